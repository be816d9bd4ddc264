package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// MessagingConfig configures a publish/consume benchmark through the
// messaging API (Producer, Consumer, hub).
type MessagingConfig struct {
	URL      string
	Messages int // published then consumed
	Size     int // payload bytes in each JSON body
	Queues   int // queues consumed
	Busy     int // queues that receive messages (the first Busy of them); 0 means all
	Prefetch int
	Batch    int // publish in batches of this size (PublishBatch); <= 1 publishes one by one
	Latency  int // ping-pong round trips for the latency percentiles
	Idle     time.Duration
	// Baseline runs the naive Redis consumer beside the hub in the same
	// run (redis URLs only).
	Baseline bool
	// Progress, when set, is called from the benchmark's goroutine with the
	// phase and the count done so far.
	Progress func(phase string, done, total int)
}

// MessagingResult is what `kombu bench --json` prints (a contract: fields
// are only ever added).
type MessagingResult struct {
	Transport      string  `json:"transport"`
	Messages       int     `json:"messages"`
	PublishPerSec  float64 `json:"publish_per_s"`
	ConsumePerSec  float64 `json:"consume_per_s"`
	P50us          float64 `json:"p50_us"`
	P99us          float64 `json:"p99_us"`
	Queues         int     `json:"queues"`
	BusyQueues     int     `json:"busy_queues"`
	Size           int     `json:"size"`
	Prefetch       int     `json:"prefetch"`
	Batch          int     `json:"batch"`
	LatencySamples int     `json:"latency_samples"`
	// Idle figures, measured for Idle after the run with every consumer
	// still active and no traffic.
	IdleGoroutines int     `json:"idle_goroutines"`
	IdleCPUPercent float64 `json:"idle_cpu_percent"`
	// IdleRedisClients is how many more clients Redis counted while idle
	// than before the benchmark connected (redis only; other clients of
	// the same server that come or go meanwhile are counted too).
	IdleRedisClients int `json:"idle_redis_clients,omitempty"`
	// IdleRedisNodes is, on a Redis Cluster, how many nodes (masters and
	// replicas) IdleRedisClients sums over: the client connections each
	// lists (CLIENT LIST, replication links left out) that were not there
	// before the benchmark connected.
	IdleRedisNodes int `json:"idle_redis_nodes,omitempty"`
	// Baseline is the naive goroutine-per-queue go-redis consumer, measured
	// in the same run on the same Redis (redis only), and the ratios of the
	// hub's figures to it.
	Baseline             *NaiveRedisResult `json:"baseline,omitempty"`
	ConsumeVsBaseline    float64           `json:"consume_vs_baseline,omitempty"`
	LatencyP50VsBaseline float64           `json:"latency_p50_vs_baseline,omitempty"`
	// LatencyP50VsPlain is the hub's p50 over that of a plain BRPOP loop
	// with no unacked record (Baseline.PlainP50us).
	LatencyP50VsPlain float64 `json:"latency_p50_vs_plain_brpop,omitempty"`
	// With Batch > 1 on Redis (and Baseline), the batched publish against a
	// plain go-redis pipeline of the same envelopes, in interleaved rounds
	// of the same run (comparePublish): PublishRoundsPerSec is the batched
	// publish's rate in those rounds, PublishBaselinePerSec the pipeline's
	// with the envelopes encoded beforehand, PublishNaivePerSec the
	// pipeline's serializing and encoding in its loop (the obvious Go
	// publisher), and the ratios are the batched rate over each.
	PublishRoundsPerSec   float64 `json:"publish_rounds_per_s,omitempty"`
	PublishBaselinePerSec float64 `json:"publish_baseline_per_s,omitempty"`
	PublishVsBaseline     float64 `json:"publish_vs_baseline,omitempty"`
	PublishNaivePerSec    float64 `json:"publish_naive_per_s,omitempty"`
	PublishVsNaive        float64 `json:"publish_vs_naive,omitempty"`
	// PublishRoundsQueues is how many queues each publisher of those rounds
	// spread its messages over, and PublishRoundsMasters how many masters
	// they are on: on a Redis Cluster one queue per master, so that a
	// batch is a pipeline per master.
	PublishRoundsQueues  int `json:"publish_rounds_queues,omitempty"`
	PublishRoundsMasters int `json:"publish_rounds_masters,omitempty"`
	// Scaling is the queue-scaling comparison (RunScaling), when asked for.
	Scaling *ScalingResult `json:"queue_scaling,omitempty"`
	// ClusterScaling is the comparison of queues spread over a Redis
	// Cluster's masters with queues on one master (RunClusterScaling),
	// when asked for.
	ClusterScaling *ClusterScalingResult `json:"cluster_scaling,omitempty"`
}

func randomName() string {
	var b [4]byte
	rand.Read(b[:])
	return "kombu-bench-" + hex.EncodeToString(b[:])
}

// RunMessaging publishes cfg.Messages messages, consumes them with acks
// through the hub, then measures round-trip latency.
func RunMessaging(ctx context.Context, cfg MessagingConfig) (MessagingResult, error) {
	if cfg.Queues < 1 {
		cfg.Queues = 1
	}
	if cfg.Busy < 1 || cfg.Busy > cfg.Queues {
		cfg.Busy = cfg.Queues
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, int, int) {}
	}
	res := MessagingResult{Messages: cfg.Messages, Queues: cfg.Queues, BusyQueues: cfg.Busy, Size: cfg.Size, Prefetch: cfg.Prefetch, Batch: cfg.Batch}
	clientsBefore := -1
	var census *nodeCensus // on a cluster: every node's clients
	if cfg.Idle > 0 && isClusterURL(cfg.URL) {
		t, err := parseCluster(cfg.URL)
		if err != nil {
			return res, err
		}
		slots, err := t.slots(ctx)
		if err == nil {
			census, err = newNodeCensus(ctx, t, slots)
		}
		if err != nil {
			return res, fmt.Errorf("idle connection count (--idle 0 skips it): %w", err)
		}
		defer census.close()
	} else if cfg.Idle > 0 {
		clientsBefore = redisClients(ctx, cfg.URL)
	}
	conn, err := messaging.NewConnection(cfg.URL, messaging.Options{})
	if err != nil {
		return res, err
	}
	defer conn.Close()
	info, err := conn.TransportInfo()
	if err != nil {
		return res, err
	}
	res.Transport = info.Driver
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return res, err
	}
	prefix := randomName()
	queues := make([]messaging.Queue, cfg.Queues)
	for i := range queues {
		queues[i] = messaging.NewQueue(fmt.Sprintf("%s-%d", prefix, i), messaging.Exchange{}, "")
		queues[i].Durable = false
		if _, err := queues[i].Declare(ctx, ch); err != nil {
			return res, err
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, q := range queues {
			q.Purge(cctx, ch)
			q.Delete(cctx, ch, messaging.DeleteOptions{})
		}
	}()
	prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		return res, err
	}
	payload := strings.Repeat("x", cfg.Size)

	// Publish phase.
	start := time.Now()
	if cfg.Batch > 1 {
		batch := make([]messaging.BatchMessage, 0, cfg.Batch)
		for i := 0; i < cfg.Messages; i++ {
			batch = append(batch, messaging.BatchMessage{
				Body:    map[string]any{"i": i, "payload": payload},
				Options: messaging.PublishOptions{RoutingKey: queues[i%cfg.Busy].Name},
			})
			if len(batch) == cfg.Batch || i == cfg.Messages-1 {
				if err := prod.PublishBatch(ctx, batch, messaging.BatchOptions{}); err != nil {
					return res, fmt.Errorf("publish batch: %w", err)
				}
				batch = batch[:0]
				cfg.Progress("publish", i+1, cfg.Messages)
			}
		}
	} else {
		for i := 0; i < cfg.Messages; i++ {
			if err := prod.Publish(ctx, map[string]any{"i": i, "payload": payload},
				messaging.PublishOptions{RoutingKey: queues[i%cfg.Busy].Name}); err != nil {
				return res, fmt.Errorf("publish: %w", err)
			}
			if i%1000 == 999 {
				cfg.Progress("publish", i+1, cfg.Messages)
			}
		}
	}
	res.PublishPerSec = float64(cfg.Messages) / time.Since(start).Seconds()

	// Consume phase: the hub runs on this goroutine.
	var got atomic.Int64
	var latencyCh chan time.Time
	var consumeErr error
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        queues,
		PrefetchCount: cfg.Prefetch,
		OnMessage: func(m *messaging.Message) {
			if err := m.Ack(); err != nil && consumeErr == nil {
				consumeErr = err
			}
			got.Add(1)
			if latencyCh != nil {
				select {
				case latencyCh <- time.Now():
				default:
				}
			}
		},
	})
	if err != nil {
		return res, err
	}
	h, err := conn.Hub()
	if err != nil {
		return res, err
	}
	if err := cons.Consume(ctx); err != nil {
		return res, err
	}
	// Timed from here: the consumer is registered (its queue declarations
	// are set-up, not throughput), and nothing flows until the hub runs.
	start = time.Now()
	last := time.Now()
	err = h.Drive(ctx, func() bool {
		n := int(got.Load())
		if time.Since(last) > 200*time.Millisecond {
			last = time.Now()
			cfg.Progress("consume", n, cfg.Messages)
		}
		return n >= cfg.Messages || consumeErr != nil
	})
	if err != nil {
		return res, fmt.Errorf("consume: %w", err)
	}
	if consumeErr != nil {
		return res, consumeErr
	}
	res.ConsumePerSec = float64(cfg.Messages) / time.Since(start).Seconds()

	// Latency phase: one message in flight at a time, publisher on another
	// goroutine, consumer on the hub.
	if cfg.Latency > 0 {
		latencyCh = make(chan time.Time, 1)
		samples := make([]float64, 0, cfg.Latency)
		pubErr := make(chan error, 1)
		want := got.Load() + int64(cfg.Latency)
		go func() {
			for i := 0; i < cfg.Latency; i++ {
				t0 := time.Now()
				if err := prod.Publish(ctx, map[string]any{"i": i, "payload": payload},
					messaging.PublishOptions{RoutingKey: queues[0].Name}); err != nil {
					pubErr <- err
					return
				}
				select {
				case t1 := <-latencyCh:
					samples = append(samples, float64(t1.Sub(t0).Nanoseconds())/1e3)
				case <-ctx.Done():
					pubErr <- ctx.Err()
					return
				}
				if i%500 == 499 {
					cfg.Progress("latency", i+1, cfg.Latency)
				}
			}
			pubErr <- nil
		}()
		var perr error
		done := false
		err = h.Drive(ctx, func() bool {
			if done {
				return true
			}
			select {
			case perr = <-pubErr:
				done = true
			default:
			}
			return done || got.Load() >= want
		})
		if !done {
			perr = <-pubErr
		}
		if err != nil {
			return res, fmt.Errorf("latency: %w", err)
		}
		if perr != nil {
			return res, fmt.Errorf("latency: %w", perr)
		}
		res.LatencySamples = len(samples)
		res.P50us = Percentile(samples, 50)
		res.P99us = Percentile(samples, 99)
	}

	// Idle phase: consumers stay active, nothing is published.
	if cfg.Idle > 0 {
		cpu0 := processCPU()
		t0 := time.Now()
		ictx, cancel := context.WithTimeout(ctx, cfg.Idle)
		err := h.Drive(ictx, func() bool { return false })
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return res, fmt.Errorf("idle: %w", err)
		}
		res.IdleCPUPercent = 100 * (processCPU() - cpu0).Seconds() / time.Since(t0).Seconds()
		res.IdleGoroutines = runtime.NumGoroutine()
		if clientsBefore >= 0 {
			if now := redisClients(ctx, cfg.URL); now >= 0 {
				res.IdleRedisClients = now - clientsBefore
			}
		}
		if census != nil {
			n, err := census.opened(ctx)
			if err != nil {
				return res, fmt.Errorf("idle: %w", err)
			}
			res.IdleRedisClients, res.IdleRedisNodes = n, len(census.nodes)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cons.Cancel(cctx); err != nil {
		return res, err
	}
	if cfg.Baseline && res.Transport == "redis" && cfg.Batch > 1 {
		cmp, err := comparePublish(ctx, cfg.URL, prod, prefix+"-pub", cfg.Messages, cfg.Batch, payload)
		if err != nil {
			return res, fmt.Errorf("publish baseline: %w", err)
		}
		res.PublishRoundsPerSec, res.PublishBaselinePerSec, res.PublishNaivePerSec = cmp.Batched, cmp.Ready, cmp.Naive
		res.PublishVsBaseline, res.PublishVsNaive = cmp.Batched/cmp.Ready, cmp.Batched/cmp.Naive
		res.PublishRoundsQueues, res.PublishRoundsMasters = cmp.Queues, cmp.Masters
	}
	if cfg.Baseline && res.Transport == "redis" {
		// Queues of its own: the hub's channel may still hold a BRPOP on the
		// first ones (Kombu's trap 13), which could pop a baseline message.
		names := make([]string, len(queues))
		for i := range queues {
			names[i] = fmt.Sprintf("%s-base-%d", prefix, i)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, name := range names {
				ch.DeleteQueue(cctx, name, false, false)
			}
		}()
		// Pre-publish the same backlog, pipelined, then let the naive
		// consumer take it.
		batch := make([]messaging.BatchMessage, 0, 1000)
		for i := 0; i < cfg.Messages; i++ {
			batch = append(batch, messaging.BatchMessage{
				Body:    map[string]any{"i": i, "payload": payload},
				Options: messaging.PublishOptions{RoutingKey: names[i%cfg.Busy]},
			})
			if len(batch) == cap(batch) || i == cfg.Messages-1 {
				if err := prod.PublishBatch(ctx, batch, messaging.BatchOptions{}); err != nil {
					return res, fmt.Errorf("baseline publish: %w", err)
				}
				batch = batch[:0]
			}
		}
		cfg.Progress("baseline", 0, cfg.Messages)
		base, err := runNaiveRedis(ctx, cfg.URL, names, cfg.Messages, cfg.Latency,
			func(ctx context.Context, q string) error {
				return prod.Publish(ctx, map[string]any{"payload": payload}, messaging.PublishOptions{RoutingKey: q})
			})
		if err != nil {
			return res, fmt.Errorf("baseline: %w", err)
		}
		res.Baseline = &base
		res.ConsumeVsBaseline = res.ConsumePerSec / base.ConsumePerSec
		if base.P50us > 0 {
			res.LatencyP50VsBaseline = res.P50us / base.P50us
		}
		if base.PlainP50us > 0 {
			res.LatencyP50VsPlain = res.P50us / base.PlainP50us
		}
	}
	return res, nil
}

// Percentile returns the p-th percentile (nearest rank) of xs, sorting a
// copy.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(p/100*float64(len(s))+0.5) - 1
	rank = min(max(rank, 0), len(s)-1)
	return s[rank]
}
