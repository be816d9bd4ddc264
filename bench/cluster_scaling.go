package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// ClusterScalingConfig configures the Redis Cluster scaling comparison:
// Queues busy queues spread evenly over the cluster's masters against
// Queues busy queues that all live on one master, in alternating rounds of
// the same run.
type ClusterScalingConfig struct {
	URL      string // redis+cluster://
	Messages int    // published and consumed by each side over all rounds
	Rounds   int    // each side takes Messages/Rounds per round
	Queues   int    // busy queues of each side (>= 2)
	Size     int    // payload bytes in each JSON body
	Prefetch int
	// Publishers is how many goroutines publish each round's backlog, each
	// on a connection of its own (default 4).
	Publishers int
	// Progress, when set, is called after each round.
	Progress func(phase string, done, total int)
}

// ClusterSide is one side of the cluster comparison: where its queues
// live, and its rates and CPU over all rounds.
type ClusterSide struct {
	// QueueNames are its queues; QueueMasters the master of each, as
	// CLUSTER SLOTS said when they were chosen.
	QueueNames   []string `json:"queue_names"`
	QueueMasters []string `json:"queue_masters"`
	// Masters is how many masters hold its queues.
	Masters       int     `json:"masters"`
	PublishPerSec float64 `json:"publish_per_s"`
	ConsumePerSec float64 `json:"consume_per_s"`
	// ClientCPUPercent is the bench process's CPU time while consuming
	// (one hub, its acks and Go's runtime), in % of one core.
	ClientCPUPercent float64 `json:"client_cpu_percent"`
	// ServerCPUPercent is the CPU time all nodes (masters and replicas,
	// INFO cpu) used while it consumed, in % of one core;
	// BusiestNodeCPUPercent that of the node that used the most.
	ServerCPUPercent      float64 `json:"server_cpu_percent"`
	BusiestNodeCPUPercent float64 `json:"busiest_node_cpu_percent"`
	// MachineBusyPercent is how busy all the machine's CPUs were while it
	// consumed, whoever used them (Linux: /proc/stat; 0 elsewhere), in %
	// of all of them: near 100, no process could get more CPU.
	MachineBusyPercent float64 `json:"machine_busy_percent,omitempty"`
}

// ClusterScalingResult is the comparison's part of `kombu bench --json`
// ("cluster_scaling"; fields are only ever added). Ratios are the spread
// side's rate over the one-master side's.
type ClusterScalingResult struct {
	Rounds           int         `json:"rounds"`
	MessagesPerRound int         `json:"messages_per_round"`
	Queues           int         `json:"queues"`
	Publishers       int         `json:"publishers"`
	ClusterMasters   int         `json:"cluster_masters"`
	ClusterNodes     int         `json:"cluster_nodes"`
	Spread           ClusterSide `json:"spread"`
	OneMaster        ClusterSide `json:"one_master"`
	ConsumeRatio     float64     `json:"consume_ratio"`
	// ConsumeRoundRatios are each round's, in order.
	ConsumeRoundRatios      []float64 `json:"consume_round_ratios"`
	MedianConsumeRoundRatio float64   `json:"median_consume_round_ratio"`
	PublishRatio            float64   `json:"publish_ratio"`
	PublishRoundRatios      []float64 `json:"publish_round_ratios"`
	MedianPublishRoundRatio float64   `json:"median_publish_round_ratio"`
}

// clusterSide is a scalingSide with its publishing time and CPU figures.
type clusterSide struct {
	*scalingSide
	published time.Duration
	clientCPU time.Duration
	nodeCPU   []float64 // seconds per node while it consumed
	// machineBusy and machineTotal are the machine's CPU ticks while it
	// consumed (machineTicks); machineOK is false once they are unknown.
	machineBusy, machineTotal uint64
	machineOK                 bool
}

// RunClusterScaling measures whether spreading queues over a cluster's
// masters raises throughput. It picks the queue names of both sides by
// their hash slot and the master CLUSTER SLOTS names for it: side "spread"
// in turn over every master, side "one" all on the master of slot 0. Each
// side has its own connection, hub and consumer on its queues. Each round
// publishes a backlog to every queue of a side through Publishers
// connections (timed: the publish rate) and times the side's consumer
// taking it with acks (the consume rate), the two sides in an order drawn
// at random, so that both see the same drift of a shared machine.
func RunClusterScaling(ctx context.Context, cfg ClusterScalingConfig) (ClusterScalingResult, error) {
	res := ClusterScalingResult{Rounds: cfg.Rounds, Queues: cfg.Queues}
	if cfg.Rounds < 1 || cfg.Queues < 2 || cfg.Messages < cfg.Rounds*cfg.Queues {
		return res, errors.New("bench: cluster scaling needs rounds >= 1, queues >= 2 and a message per queue per round")
	}
	if cfg.Publishers < 1 {
		cfg.Publishers = 4
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, int, int) {}
	}
	res.Publishers = cfg.Publishers
	per := cfg.Messages / cfg.Rounds
	res.MessagesPerRound = per
	target, err := parseCluster(cfg.URL)
	if err != nil {
		return res, err
	}
	slots, err := target.slots(ctx)
	if err != nil {
		return res, err
	}
	census, err := newNodeCensus(ctx, target, slots)
	if err != nil {
		return res, err
	}
	defer census.close()
	res.ClusterMasters, res.ClusterNodes = len(slots.masters), len(slots.nodes)
	if len(slots.masters) < 2 {
		return res, fmt.Errorf("bench: cluster scaling needs 2 masters or more; the cluster has %d", len(slots.masters))
	}
	pubs, err := newPublishers(ctx, cfg.URL, cfg.Publishers)
	defer pubs.close()
	if err != nil {
		return res, err
	}
	ch, err := pubs.conns[0].DefaultChannel(ctx)
	if err != nil {
		return res, err
	}
	prefix := randomName()
	var sides [2]*clusterSide // 0: spread, 1: one master
	var plain [2]*scalingSide
	defer closeSides(plain[:], ch)
	for i, spread := range []bool{true, false} {
		names, masters, err := target.pickQueues(slots, fmt.Sprintf("%s-%c", prefix, "so"[i]), cfg.Queues, spread)
		if err != nil {
			return res, err
		}
		s, err := newScalingSide(ctx, cfg.URL, cfg.Prefetch, ch, names)
		plain[i] = s
		if err != nil {
			return res, err
		}
		sides[i] = &clusterSide{scalingSide: s, nodeCPU: make([]float64, len(census.nodes)), machineOK: true}
		out := &res.Spread
		if !spread {
			out = &res.OneMaster
		}
		out.QueueNames, out.QueueMasters = names, masters
		out.Masters = len(slices.Compact(slices.Sorted(slices.Values(masters))))
	}
	payload := strings.Repeat("x", cfg.Size)
	// A short round first, not counted: connections, scripts, and every
	// queue's consume socket on its master.
	for _, s := range sides {
		n := min(per, 100*cfg.Queues)
		if _, err := pubs.publish(ctx, s.queues, n, payload); err != nil {
			return res, err
		}
		if _, err := s.drain(ctx, n); err != nil {
			return res, err
		}
	}
	for r := 0; r < cfg.Rounds; r++ {
		var pub, con [2]time.Duration
		for _, i := range rand.Perm(2) {
			s := sides[i]
			if pub[i], err = pubs.publish(ctx, s.queues, per, payload); err != nil {
				return res, err
			}
			if con[i], err = s.measuredDrain(ctx, census, per); err != nil {
				return res, err
			}
			s.published += pub[i]
		}
		res.PublishRoundRatios = append(res.PublishRoundRatios, pub[1].Seconds()/pub[0].Seconds())
		res.ConsumeRoundRatios = append(res.ConsumeRoundRatios, con[1].Seconds()/con[0].Seconds())
		cfg.Progress("cluster scaling", r+1, cfg.Rounds)
	}
	total := float64(per * cfg.Rounds)
	for i, out := range []*ClusterSide{&res.Spread, &res.OneMaster} {
		s := sides[i]
		out.PublishPerSec = total / s.published.Seconds()
		out.ConsumePerSec = total / s.spent.Seconds()
		out.ClientCPUPercent = 100 * s.clientCPU.Seconds() / s.spent.Seconds()
		for _, c := range s.nodeCPU {
			out.ServerCPUPercent += 100 * c / s.spent.Seconds()
			out.BusiestNodeCPUPercent = max(out.BusiestNodeCPUPercent, 100*c/s.spent.Seconds())
		}
		if s.machineOK && s.machineTotal > 0 {
			out.MachineBusyPercent = 100 * float64(s.machineBusy) / float64(s.machineTotal)
		}
	}
	res.ConsumeRatio = res.Spread.ConsumePerSec / res.OneMaster.ConsumePerSec
	res.PublishRatio = res.Spread.PublishPerSec / res.OneMaster.PublishPerSec
	res.MedianConsumeRoundRatio = median(res.ConsumeRoundRatios)
	res.MedianPublishRoundRatio = median(res.PublishRoundRatios)
	return res, nil
}

// measuredDrain is drain, adding the time to s.spent and the CPU time the
// process and every node used meanwhile to the side's figures (the nodes
// are asked outside the timed part).
func (s *clusterSide) measuredDrain(ctx context.Context, census *nodeCensus, n int) (time.Duration, error) {
	before, err := census.cpu(ctx)
	if err != nil {
		return 0, err
	}
	busy0, total0, ok0 := machineTicks()
	cpu0 := processCPU()
	d, err := s.drain(ctx, n)
	s.clientCPU += processCPU() - cpu0
	busy1, total1, ok1 := machineTicks()
	s.machineBusy += busy1 - busy0
	s.machineTotal += total1 - total0
	s.machineOK = s.machineOK && ok0 && ok1
	if err != nil {
		return d, err
	}
	s.spent += d
	after, err := census.cpu(ctx)
	if err != nil {
		return d, err
	}
	for i := range after {
		s.nodeCPU[i] += after[i] - before[i]
	}
	return d, nil
}

// publishers are the connections that publish the backlogs, one goroutine
// each.
type publishers struct {
	conns []*messaging.Connection
	prods []*messaging.Producer
}

func newPublishers(ctx context.Context, url string, n int) (*publishers, error) {
	p := &publishers{}
	for range n {
		conn, err := messaging.NewConnection(url, messaging.Options{})
		if err != nil {
			return p, err
		}
		p.conns = append(p.conns, conn)
		prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
		if err != nil {
			return p, err
		}
		p.prods = append(p.prods, prod)
	}
	return p, nil
}

// publish publishes n messages, message i to queues[i%len(queues)], each
// publisher taking every len(p.prods)-th message in batches of 100
// (PublishBatch), and returns how long it took them all.
func (p *publishers) publish(ctx context.Context, queues []messaging.Queue, n int, payload string) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(p.prods))
	start := time.Now()
	for g, prod := range p.prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]messaging.BatchMessage, 0, 100)
			for i := g; i < n; i += len(p.prods) {
				batch = append(batch, messaging.BatchMessage{
					Body:    map[string]any{"i": i, "payload": payload},
					Options: messaging.PublishOptions{RoutingKey: queues[i%len(queues)].Name},
				})
				if len(batch) == cap(batch) || i+len(p.prods) >= n {
					if err := prod.PublishBatch(ctx, batch, messaging.BatchOptions{}); err != nil {
						errs[g] = fmt.Errorf("publish: %w", err)
						return
					}
					batch = batch[:0]
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

func (p *publishers) close() {
	for _, c := range p.conns {
		c.Close()
	}
}
