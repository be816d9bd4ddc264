package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// driveUntil runs conn's hub (DrainEvents) until cond holds.
func driveUntil(t *testing.T, ctx context.Context, conn *messaging.Connection, cond func() bool) {
	t.Helper()
	for !cond() {
		tick, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		err := conn.DrainEvents(tick)
		cancel()
		if err != nil && !errors.Is(err, messaging.ErrTimeout) {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("gave up waiting")
		}
	}
}

// lifeQueue declares a fresh direct queue on conn and publishes n integer
// bodies 0..n-1 to it.
func lifeQueue(t *testing.T, ctx context.Context, conn *messaging.Connection, n int) (messaging.Queue, *messaging.Producer) {
	t.Helper()
	name := "life-" + messaging.NewUUID()[:8]
	q := messaging.NewQueue(name, messaging.NewExchange(name, messaging.Direct), name)
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: name})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := p.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	return q, p
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Close stops deliveries for good: Done is closed with ErrStopped, Consume
// refuses, messages published afterwards go to another consumer, and the
// messages the callbacks hold can still be settled.
func TestConsumerCloseStopsDeliveries(t *testing.T) {
	ctx := testCtx(t)
	conn := memConn(t)
	q, p := lifeQueue(t, ctx, conn, 3)
	var mu sync.Mutex
	var held []*messaging.Message
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(held) }
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) {
			mu.Lock()
			defer mu.Unlock()
			held = append(held, m)
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	driveUntil(t, ctx, conn, func() bool { return count() == 3 })
	done := cons.Done()
	if isClosed(done) || cons.Err() != nil {
		t.Fatalf("Done closed (%v) while consuming", cons.Err())
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(done) || !errors.Is(cons.Err(), messaging.ErrStopped) {
		t.Fatalf("after Close: Done closed %v, Err %v", isClosed(done), cons.Err())
	}
	if err := cons.Consume(ctx); !errors.Is(err, messaging.ErrStopped) {
		t.Errorf("Consume after Close = %v", err)
	}
	if err := cons.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	for _, m := range held {
		if err := m.Ack(); err != nil {
			t.Errorf("a held message cannot be acked after Close: %v", err)
		}
	}
	for i := range 2 {
		if err := p.Publish(ctx, 10+i, messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var second atomic.Int32
	cons2, _ := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) { second.Add(1); m.Ack() }}})
	if err := cons2.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	driveUntil(t, ctx, conn, func() bool { return second.Load() == 2 })
	if n := count(); n != 3 {
		t.Errorf("the closed consumer got %d messages, want 3", n)
	}
	cons2.Close()
}

// A delivery already under way when Close returns never reaches a callback:
// a message that needs an acknowledgement goes back to its queue, a no-ack
// one is dropped.
func TestConsumerCloseRefusesLateDeliveries(t *testing.T) {
	for _, noAck := range []bool{false, true} {
		t.Run(fmt.Sprintf("noAck=%v", noAck), func(t *testing.T) {
			ctx := testCtx(t)
			b := &fakeBroker{}
			c, _ := newFake(t, "fake://a", b, nil)
			var called atomic.Int32
			cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "q"}},
				NoAck: noAck, Callbacks: []messaging.Callback{func(any, *messaging.Message) { called.Add(1) }}})
			if err := cons.Consume(ctx); err != nil {
				t.Fatal(err)
			}
			def, _ := c.DefaultChannel(ctx)
			ch := def.(*fakeChannel)
			ch.mu.Lock()
			fn := ch.consumers[cons.ConsumerTags()["q"]]
			ch.mu.Unlock()
			if err := cons.Close(); err != nil {
				t.Fatal(err)
			}
			h, _ := c.Hub()
			late := &transport.Message{Body: []byte("late"), ContentType: "text/plain",
				DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "late", Queue: "q"}}
			if err := h.Call(ctx, func() { fn(late) }); err != nil {
				t.Fatal(err)
			}
			ch.mu.Lock()
			rejects := slices.Clone(ch.rejects)
			ch.mu.Unlock()
			want := []string{"late:true"}
			if noAck {
				want = nil
			}
			if called.Load() != 0 || !slices.Equal(rejects, want) {
				t.Errorf("callback called %d times, rejects %v, want none and %v", called.Load(), rejects, want)
			}
		})
	}
}

// Drain waits for the callbacks' work handed to a Workers pool to be
// settled, whether Drain drives the hub itself or another goroutine runs
// it; then nothing is left in the broker.
func TestConsumerDrainWaitsForWorkers(t *testing.T) {
	for _, userHub := range []bool{false, true} {
		t.Run(fmt.Sprintf("userHub=%v", userHub), func(t *testing.T) {
			ctx := testCtx(t)
			url := "memory://drain-" + messaging.NewUUID()[:8]
			conn, _ := messaging.NewConnection(url, messaging.Options{})
			defer conn.Close()
			const n = 4
			q, _ := lifeQueue(t, ctx, conn, n)
			workers := messaging.NewWorkers(messaging.WorkersOptions{N: n, Queue: n})
			defer workers.Close()
			gate := make(chan struct{})
			var started, early atomic.Int32
			var drained atomic.Bool
			cons, _ := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
				PrefetchCount: workers.Capacity(),
				Callbacks: []messaging.Callback{workers.Callback(func(ctx context.Context, _ any, m *messaging.Message) error {
					started.Add(1)
					<-gate
					if drained.Load() {
						early.Add(1)
					}
					return m.Ack()
				})}})
			if err := cons.Consume(ctx); err != nil {
				t.Fatal(err)
			}
			driveUntil(t, ctx, conn, func() bool { return started.Load() == n })
			if userHub {
				h, _ := conn.Hub()
				hctx, stopHub := context.WithCancel(ctx)
				ran := make(chan error, 1)
				go func() { ran <- h.Run(hctx) }()
				defer func() { stopHub(); <-ran }()
			}
			result := make(chan error, 1)
			go func() {
				err := cons.Drain(ctx)
				drained.Store(true)
				result <- err
			}()
			<-cons.Done() // Drain has stopped the deliveries
			close(gate)
			if err := <-result; err != nil {
				t.Fatalf("Drain = %v", err)
			}
			if early.Load() != 0 {
				t.Errorf("Drain returned before %d handlers had settled", early.Load())
			}
			conn.Close()
			if left := queueSize(t, ctx, url, q); left != 0 {
				t.Errorf("%d messages back in the queue after a complete drain", left)
			}
		})
	}
}

// queueSize counts the ready messages of q through a new connection to the
// broker at url.
func queueSize(t *testing.T, ctx context.Context, url string, q messaging.Queue) int {
	t.Helper()
	conn, err := messaging.NewConnection(url, brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := q.DeclareQueue(ctx, ch, true)
	if err != nil {
		t.Fatal(err)
	}
	return info.Messages
}

// When a handler never finishes, Drain returns ctx's error at its deadline,
// and the message goes back to the queue: a later settlement by the handler
// fails instead of losing it.
func TestConsumerDrainDeadline(t *testing.T) {
	ctx := testCtx(t)
	url := "memory://drain-dl-" + messaging.NewUUID()[:8]
	conn, _ := messaging.NewConnection(url, messaging.Options{})
	defer conn.Close()
	q, _ := lifeQueue(t, ctx, conn, 1)
	workers := messaging.NewWorkers(messaging.WorkersOptions{N: 1})
	defer workers.Close()
	release := make(chan struct{})
	got := make(chan *messaging.Message, 1)
	late := make(chan error, 1)
	cons, _ := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{workers.Callback(func(ctx context.Context, _ any, m *messaging.Message) error {
			got <- m
			<-release
			err := m.Ack()
			late <- err
			return err
		})}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	var m *messaging.Message
	driveUntil(t, ctx, conn, func() bool {
		select {
		case m = <-got:
			return true
		default:
			return false
		}
	})
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond) // the deadline under test
	defer cancel()
	if err := cons.Drain(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v, want the deadline", err)
	}
	if m.State() != messaging.Requeued {
		t.Errorf("message state %v after the drain's deadline, want REQUEUED", m.State())
	}
	close(release)
	if err := <-late; !errors.Is(err, messaging.ErrMessageState) {
		t.Errorf("the handler's late Ack = %v, want a MessageStateError", err)
	}
	conn.Close()
	if left := queueSize(t, ctx, url, q); left != 1 {
		t.Errorf("%d messages in the queue, want the one given back", left)
	}
}

// Done and Err say why consuming stopped: a lost connection (after which
// Consume revives the consumer and Done starts again), Cancel, and the
// Connection's Close.
func TestConsumerDoneErr(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "q"}},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) {}}})
	done := cons.Done() // asked before consuming: watched from Consume on
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	b.lastConn().kill()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Done not closed when the connection was lost")
	}
	if err := cons.Err(); !transport.IsConnectionError(err) || !errors.Is(err, transport.ErrConnectionLost) {
		t.Errorf("Err after a lost connection = %v", err)
	}
	// Consume revives the consumer on a new connection: a new Done.
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	done2 := cons.Done()
	if done2 == done || isClosed(done2) || cons.Err() != nil {
		t.Fatalf("after reviving: new Done %v, closed %v, Err %v", done2 != done, isClosed(done2), cons.Err())
	}
	if err := cons.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if !isClosed(done2) || !errors.Is(cons.Err(), messaging.ErrStopped) {
		t.Errorf("after Cancel: Done closed %v, Err %v", isClosed(done2), cons.Err())
	}
	// Without a call to Done, Err notices a loss by itself.
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	b.lastConn().kill()
	if err := cons.Err(); !transport.IsConnectionError(err) {
		t.Errorf("Err without Done after a loss = %v", err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	done3 := cons.Done()
	c.Close()
	select {
	case <-done3:
	case <-ctx.Done():
		t.Fatal("Done not closed when the Connection was closed")
	}
	if err := cons.Err(); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Err after Connection.Close = %v", err)
	}
	if err := cons.Close(); err != nil {
		t.Errorf("Close after the connection's = %v", err)
	}
}

// Drain on a consumer that never consumed, twice, and after Close.
func TestConsumerDrainIdle(t *testing.T) {
	ctx := testCtx(t)
	conn := memConn(t)
	cons, _ := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "idle"}},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) {}}})
	for i := range 2 {
		if err := cons.Drain(ctx); err != nil {
			t.Errorf("Drain %d = %v", i, err)
		}
	}
	if err := cons.Close(); err != nil || !errors.Is(cons.Err(), messaging.ErrStopped) {
		t.Errorf("Close = %v, Err %v", err, cons.Err())
	}
}
