package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// ScalingConfig configures the queue-scaling comparison: one consumer on
// Queues queues with messages on one of them, against one consumer on a
// single queue, measured in alternating rounds.
type ScalingConfig struct {
	URL      string
	Messages int // consumed by each consumer over all rounds
	Rounds   int // rounds; each consumer takes Messages/Rounds per round
	Queues   int // queues of the many-queue consumer (> 1)
	Size     int // payload bytes in each JSON body
	Prefetch int
	// Progress, when set, is called after each round.
	Progress func(phase string, done, total int)
}

// ScalingResult is the comparison's part of `kombu bench --json`
// ("queue_scaling"; fields are only ever added).
type ScalingResult struct {
	Rounds           int     `json:"rounds"`
	MessagesPerRound int     `json:"messages_per_round"`
	Queues           int     `json:"queues"`
	OneQueuePerSec   float64 `json:"one_queue_per_s"`
	ManyQueuesPerSec float64 `json:"many_queues_per_s"`
	// Ratio is ManyQueuesPerSec / OneQueuePerSec over all rounds;
	// RoundRatios are each round's, in order.
	Ratio       float64   `json:"ratio"`
	RoundRatios []float64 `json:"round_ratios"`
	// MedianRoundRatio is the median of RoundRatios.
	MedianRoundRatio float64 `json:"median_round_ratio"`
}

// scalingSide is one of the two consumers: its own connection, hub and
// queues, and the count of messages it has taken.
type scalingSide struct {
	conn   *messaging.Connection
	hub    *hub.Hub
	cons   *messaging.Consumer
	queues []messaging.Queue
	got    atomic.Int64
	err    atomic.Pointer[error]
	spent  time.Duration
}

// RunScaling measures how a consumer's throughput on one busy queue holds
// up when it consumes many queues: each round publishes a backlog to the
// busy queue of each side (not timed) and times each side consuming it
// with acks, in an order drawn at random, so that both sides see the same
// drift of a shared machine.
func RunScaling(ctx context.Context, cfg ScalingConfig) (ScalingResult, error) {
	res := ScalingResult{Rounds: cfg.Rounds, Queues: cfg.Queues}
	if cfg.Rounds < 1 || cfg.Queues < 2 || cfg.Messages < cfg.Rounds {
		return res, fmt.Errorf("bench: scaling needs rounds >= 1, queues >= 2 and at least one message per round")
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, int, int) {}
	}
	per := cfg.Messages / cfg.Rounds
	res.MessagesPerRound = per
	pubConn, err := messaging.NewConnection(cfg.URL, messaging.Options{})
	if err != nil {
		return res, err
	}
	defer pubConn.Close()
	ch, err := pubConn.DefaultChannel(ctx)
	if err != nil {
		return res, err
	}
	prod, err := messaging.NewProducer(pubConn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		return res, err
	}
	prefix := randomName()
	var sides [2]*scalingSide // 0: one queue, 1: many
	defer closeSides(sides[:], ch)
	for i, n := range []int{1, cfg.Queues} {
		names := make([]string, n)
		for j := range names {
			names[j] = fmt.Sprintf("%s-%d-%d", prefix, n, j)
		}
		s, err := newScalingSide(ctx, cfg.URL, cfg.Prefetch, ch, names)
		sides[i] = s
		if err != nil {
			return res, err
		}
	}
	payload := strings.Repeat("x", cfg.Size)
	publish := func(s *scalingSide, n int) error {
		batch := make([]messaging.BatchMessage, 0, 1000)
		for i := 0; i < n; i++ {
			batch = append(batch, messaging.BatchMessage{
				Body:    map[string]any{"i": i, "payload": payload},
				Options: messaging.PublishOptions{RoutingKey: s.queues[0].Name},
			})
			if len(batch) == cap(batch) || i == n-1 {
				if err := prod.PublishBatch(ctx, batch, messaging.BatchOptions{}); err != nil {
					return fmt.Errorf("publish: %w", err)
				}
				batch = batch[:0]
			}
		}
		return nil
	}
	// A short round first, not counted: connections, scripts and the
	// many-queue consumer's first pop over every key.
	for _, s := range sides {
		if err := publish(s, min(per, 1000)); err != nil {
			return res, err
		}
		if _, err := s.drain(ctx, min(per, 1000)); err != nil {
			return res, err
		}
	}
	for r := 0; r < cfg.Rounds; r++ {
		var took [2]time.Duration
		for _, i := range rand.Perm(2) {
			s := sides[i]
			if err := publish(s, per); err != nil {
				return res, err
			}
			d, err := s.drain(ctx, per)
			if err != nil {
				return res, err
			}
			took[i] = d
			s.spent += d
		}
		res.RoundRatios = append(res.RoundRatios, took[0].Seconds()/took[1].Seconds())
		cfg.Progress("scaling", r+1, cfg.Rounds)
	}
	total := float64(per * cfg.Rounds)
	res.OneQueuePerSec = total / sides[0].spent.Seconds()
	res.ManyQueuesPerSec = total / sides[1].spent.Seconds()
	res.Ratio = res.ManyQueuesPerSec / res.OneQueuePerSec
	res.MedianRoundRatio = median(res.RoundRatios)
	return res, nil
}

// closeSides closes the sides' connections, then deletes their queues
// through ch.
func closeSides(sides []*scalingSide, ch transport.Declarer) {
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Closed first: closing gives unacknowledged messages back, which
	// would bring a deleted queue's key back.
	for _, s := range sides {
		if s != nil && s.conn != nil {
			s.conn.Close()
		}
	}
	for _, s := range sides {
		if s == nil {
			continue
		}
		for _, q := range s.queues {
			q.Delete(cctx, ch, messaging.DeleteOptions{})
		}
	}
}

// newScalingSide connects a consumer to new queues of the given names
// (declared through ch) and starts consuming; nothing flows until its hub
// is driven.
func newScalingSide(ctx context.Context, url string, prefetch int, ch transport.Declarer, names []string) (*scalingSide, error) {
	s := &scalingSide{}
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		return s, err
	}
	s.conn = conn
	for _, name := range names {
		q := messaging.NewQueue(name, messaging.Exchange{}, "")
		q.Durable = false
		s.queues = append(s.queues, q)
		if _, err := q.Declare(ctx, ch); err != nil {
			return s, err
		}
	}
	if s.hub, err = conn.Hub(); err != nil {
		return s, err
	}
	s.cons, err = messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        s.queues,
		PrefetchCount: prefetch,
		OnMessage: func(m *messaging.Message) {
			if err := m.Ack(); err != nil {
				s.err.CompareAndSwap(nil, &err)
			}
			s.got.Add(1)
		},
	})
	if err != nil {
		return s, err
	}
	return s, s.cons.Consume(ctx)
}

// drain drives the side's hub until it has taken n more messages and
// returns how long that took.
func (s *scalingSide) drain(ctx context.Context, n int) (time.Duration, error) {
	want := s.got.Load() + int64(n)
	start := time.Now()
	err := s.hub.Drive(ctx, func() bool { return s.got.Load() >= want || s.err.Load() != nil })
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("consume: %w", err)
	}
	if p := s.err.Load(); p != nil {
		return d, fmt.Errorf("ack: %w", *p)
	}
	return d, nil
}

// median returns the median of xs (the mean of the middle two for an even
// count), sorting a copy.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}
