package messaging_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
)

// hangGuard runs fn on its own goroutine and fails the test if it has not
// returned after a generous while (a guard against the deadlock these tests
// look for, not a timed assertion).
func hangGuard(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s hung", what)
	}
}

// TestCallbackReadsMessageAckedElsewhere: a consumer callback looks at the
// previous message while another goroutine acks that message, with nobody
// driving the hub in between. Ack used to run the hub's pending work on
// the acking goroutine while holding the message's lock; the next delivery's
// callback then read that message and deadlocked. Callbacks must run only
// inside DrainEvents, on the goroutine that drives the hub.
func TestCallbackReadsMessageAckedElsewhere(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.NewQueue("owner-deadlock", messaging.NewExchange("owner-deadlock", messaging.Direct), "k")
	p, err := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := p.Publish(ctx, fmt.Sprint("m", i), messaging.PublishOptions{Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	var draining atomic.Bool
	var prev *messaging.Message
	var offDriver atomic.Int32
	got := make(chan *messaging.Message, 3)
	states := make(chan messaging.State, 3)
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{
		Queues:        []messaging.Queue{q},
		PrefetchCount: 1,
		Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) {
			if !draining.Load() {
				offDriver.Add(1)
			}
			if prev != nil {
				states <- prev.State() // takes the previous message's lock
			}
			prev = m
			got <- m
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	drain := func() {
		t.Helper()
		draining.Store(true)
		defer draining.Store(false)
		if err := c.DrainEvents(ctx); err != nil {
			t.Fatal(err)
		}
	}
	drain()
	for i := range 3 {
		m := <-got
		hangGuard(t, "Ack from another goroutine", func() {
			if err := m.Ack(); err != nil {
				t.Error(err)
			}
		})
		if i < 2 {
			drain()
			if s := <-states; s != messaging.Acked {
				t.Errorf("the callback saw the previous message %v, want ACK", s)
			}
		}
	}
	if n := offDriver.Load(); n != 0 {
		t.Fatalf("%d callbacks ran outside DrainEvents (on an acking goroutine)", n)
	}
}

// TestGetAckLoopRunsNoCallbacks: Kombu's polling loop (Queue.Get + Ack)
// on a connection nobody drives, while a consumer of another queue has
// messages waiting. The loop's goroutine never runs that consumer's
// callback; a requeue is back in the queue when Requeue returns; the
// consumer's messages arrive with the next DrainEvents.
func TestGetAckLoopRunsNoCallbacks(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	ch, err := c.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ex := messaging.NewExchange("owner-loop", messaging.Direct)
	getq := messaging.NewQueue("owner-loop-get", ex, "get")
	busy := messaging.NewQueue("owner-loop-busy", ex, "busy")
	p, err := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: ex})
	if err != nil {
		t.Fatal(err)
	}
	decl := messaging.PublishOptions{Declare: []messaging.Declaration{getq, busy}}
	var draining atomic.Bool
	var delivered, offDriver atomic.Int32
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{
		Queues: []messaging.Queue{busy},
		Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) {
			if !draining.Load() {
				offDriver.Add(1)
			}
			delivered.Add(1)
			m.Ack()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	// One delivery first, so the consumer is running before the loop.
	decl.RoutingKey = "busy"
	if err := p.Publish(ctx, "for the consumer", decl); err != nil {
		t.Fatal(err)
	}
	draining.Store(true)
	if err := c.DrainEvents(ctx); err != nil {
		t.Fatal(err)
	}
	draining.Store(false)
	const n = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			decl.RoutingKey = "busy"
			if err := p.Publish(ctx, "for the consumer", decl); err != nil {
				t.Error(err)
				return
			}
			decl.RoutingKey = "get"
			if err := p.Publish(ctx, fmt.Sprint(i), decl); err != nil {
				t.Error(err)
				return
			}
			m, err := getq.Get(ctx, ch, messaging.GetOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			if i == n-1 {
				if err := m.Requeue(); err != nil {
					t.Error(err)
				}
				info, err := getq.Declare(ctx, ch)
				if err != nil || info.Messages != 1 {
					t.Errorf("after Requeue returned: %+v, %v; want the message back", info, err)
				}
				return
			}
			if err := m.Ack(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	<-done
	if k := offDriver.Load(); k != 0 {
		t.Fatalf("the consumer's callback ran %d times on the Get+Ack goroutine", k)
	}
	draining.Store(true)
	defer draining.Store(false)
	for delivered.Load() < n+1 {
		if err := c.DrainEvents(ctx); err != nil {
			t.Fatalf("after %d deliveries: %v", delivered.Load(), err)
		}
	}
}

// TestCloseFromCallback: Connection.Close and DrainEvents from a consumer
// callback return hub.ErrInCallback at once (Close used to wait for the
// hub that ran it, for ever) and change nothing; the connection keeps
// working and closes normally afterwards.
func TestCloseFromCallback(t *testing.T) {
	ctx := testCtx(t)
	c, err := messaging.NewConnection("memory://owner-close-"+messaging.NewUUID()[:8], messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := messaging.NewQueue("owner-close", messaging.NewExchange("owner-close", messaging.Direct), "k")
	p, err := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	var closeErr, drainErr error
	calls := 0
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{
		Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) {
			calls++
			if calls == 1 {
				closeErr = c.Close()
				drainErr = c.DrainEvents(ctx)
			}
			m.Ack()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.Publish(ctx, "x", messaging.PublishOptions{Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
		hangGuard(t, "DrainEvents", func() {
			if err := c.DrainEvents(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	if !errors.Is(closeErr, hub.ErrInCallback) || !errors.Is(drainErr, hub.ErrInCallback) {
		t.Fatalf("from a callback: Close = %v, DrainEvents = %v; want ErrInCallback", closeErr, drainErr)
	}
	if calls != 2 {
		t.Fatalf("%d deliveries after the refused Close, want 2", calls)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.DrainEvents(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("DrainEvents after Close: %v", err)
	}
}
