package messaging_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
)

// TestWorkersSizingRule: a consumer whose PrefetchCount is the pool's
// Capacity (N+Queue) never overflows it, on memory, Redis and RabbitMQ.
// The handlers are slow (2 ms) so that the pool is full all the time; the
// ones that acknowledge inside the handler and the ones that leave it to
// the pool are both tried. Before issue 10 the rule overflowed the pool in
// 10 of 10 memory runs: a handler's ack freed the prefetch slot before the
// worker was free, and the next delivery found the pool full.
func TestWorkersSizingRule(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		runSizingRule(t, "memory://sizing-"+messaging.NewUUID()[:8], messaging.Options{})
	})
	eachBroker(t, func(t *testing.T, url string, _ *messaging.Connection) {
		runSizingRule(t, url, brokerOptions())
	})
}

func runSizingRule(t *testing.T, url string, opts messaging.Options) {
	for _, ackInHandler := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		h, err := hub.New(hub.Options{})
		if err != nil {
			t.Fatal(err)
		}
		copts := opts
		copts.Hub = h
		conn, err := messaging.NewConnection(url, copts)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := messaging.NewConnection(url, opts)
		if err != nil {
			t.Fatal(err)
		}
		hctx, stop := context.WithCancel(ctx)
		ran := make(chan error, 1)
		go func() { ran <- h.Run(hctx) }()

		w := messaging.NewWorkers(messaging.WorkersOptions{N: 2, Queue: 3})
		var handled atomic.Int64
		q := messaging.Queue{Name: "sizing-" + messaging.NewUUID()[:8]}
		cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
			PrefetchCount: w.Capacity(),
			Callbacks: []messaging.Callback{w.Callback(func(ctx context.Context, _ any, m *messaging.Message) error {
				time.Sleep(2 * time.Millisecond)
				handled.Add(1)
				if ackInHandler {
					return m.Ack()
				}
				return nil
			})}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Consume(ctx); err != nil {
			t.Fatal(err)
		}
		p, _ := messaging.NewProducer(pub, messaging.ProducerOptions{RoutingKey: q.Name})
		const n = 300
		for i := range n {
			if err := p.Publish(ctx, i, messaging.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for handled.Load() < n && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if err := w.Drain(ctx); err != nil {
			t.Error(err)
		}
		if ch, err := pub.DefaultChannel(ctx); err == nil {
			q.Delete(ctx, ch, messaging.DeleteOptions{})
		}
		conn.Close()
		stop()
		<-ran
		h.Close()
		pub.Close()
		cancel()
		t.Logf("ack in the handler %v: %d of %d handled, %d overflows (N 2, Queue 3, PrefetchCount %d)",
			ackInHandler, handled.Load(), n, w.Overflows(), w.Capacity())
		if handled.Load() < n {
			t.Errorf("only %d of %d messages handled", handled.Load(), n)
		}
		if w.Overflows() != 0 {
			t.Errorf("%d overflows with PrefetchCount = Capacity", w.Overflows())
		}
	}
}
