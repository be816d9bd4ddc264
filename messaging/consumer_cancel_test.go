package messaging_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// inbox collects the messages a consumer's callback gets, on the hub.
type inbox struct {
	mu   sync.Mutex
	msgs []*messaging.Message
}

func (b *inbox) cb(_ any, m *messaging.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

func (b *inbox) take() []*messaging.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.msgs
	b.msgs = nil
	return out
}

// drainUntilErr runs conn's hub until DrainEvents returns an error other
// than a timeout, and returns it.
func drainUntilErr(t *testing.T, ctx context.Context, conn *messaging.Connection) error {
	t.Helper()
	for {
		tick, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := conn.DrainEvents(tick)
		cancel()
		if err != nil && !errors.Is(err, messaging.ErrTimeout) {
			return err
		}
		if ctx.Err() != nil {
			t.Fatal("gave up waiting for an error from DrainEvents")
		}
	}
}

// consumerCount returns how many consumers the broker counts on queue, or
// -1 when there is no such queue.
func consumerCount(t *testing.T, ctx context.Context, conn *messaging.Connection, queue string) int {
	t.Helper()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ch.DeclareQueue(ctx, transport.Queue{Name: queue, Passive: true})
	if errors.Is(err, transport.ErrNotFound) {
		return -1
	}
	if err != nil {
		t.Fatalf("passive declare of %s: %v", queue, err)
	}
	return info.Consumers
}

// cancelCase is a test of a broker cancel on RabbitMQ: conn consumes,
// other deletes queues.
type cancelCase struct {
	t           *testing.T
	ctx         context.Context
	conn, other *messaging.Connection
	name        string // unique to the test
}

// newCancelCase connects twice to RabbitMQ (skipping without it); queues
// are deleted when the test ends.
func newCancelCase(t *testing.T, queues ...string) *cancelCase {
	conn, name := amqpConn(t)
	other, _ := amqpConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	names := []string{name}
	for _, suffix := range queues {
		names = append(names, name+suffix)
	}
	deleteAfter(t, other, names...)
	return &cancelCase{t: t, ctx: ctx, conn: conn, other: other, name: name}
}

// deleteQueue deletes queue from the other connection.
func (cc *cancelCase) deleteQueue(queue string) {
	cc.t.Helper()
	ch, err := cc.other.DefaultChannel(cc.ctx)
	if err != nil {
		cc.t.Fatal(err)
	}
	if _, err := ch.DeleteQueue(cc.ctx, queue, false, false); err != nil {
		cc.t.Fatalf("delete %s: %v", queue, err)
	}
}

// On RabbitMQ, deleting a consumed queue from another connection cancels
// the consumer: Done closes, Err and DrainEvents give a
// *CancelledByBrokerError naming the queue, the other queue's consumer is
// cancelled too, the messages held can still be acknowledged, and Consume
// revives the consumer with the queue declared again.
func TestConsumerCancelledByBroker(t *testing.T) {
	cc := newCancelCase(t, "-a", "-b")
	ctx, conn, other, name := cc.ctx, cc.conn, cc.other, cc.name
	ex := messaging.NewExchange(name, messaging.Direct)
	qa := messaging.NewQueue(name+"-a", ex, "a")
	qb := messaging.NewQueue(name+"-b", ex, "b")
	var in inbox
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues: []messaging.Queue{qa, qb}, Callbacks: []messaging.Callback{in.cb}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	done := cons.Done()
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: ex})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(rk string) {
		t.Helper()
		if err := p.Publish(ctx, rk, messaging.PublishOptions{RoutingKey: rk}); err != nil {
			t.Fatal(err)
		}
	}
	publish("a")
	publish("b")
	driveUntil(t, ctx, conn, func() bool { return in.len() == 2 })
	held := in.take()

	cc.deleteQueue(qa.Name)
	err = drainUntilErr(t, ctx, conn)
	if !errors.Is(err, messaging.ErrCancelledByBroker) {
		t.Fatalf("DrainEvents = %v, want ErrCancelledByBroker", err)
	}
	t.Logf("DrainEvents: %v", err)
	if !isClosed(done) {
		t.Fatal("Done is open after the broker cancelled the consumer")
	}
	var cbe *messaging.CancelledByBrokerError
	if err := cons.Err(); !errors.As(err, &cbe) || cbe.Queue != qa.Name ||
		!errors.Is(err, transport.ErrConsumerCancelled) || cbe.ConsumerTag == "" {
		t.Fatalf("Err = %v, want a *CancelledByBrokerError for %s", err, qa.Name)
	}
	for _, m := range held {
		if err := m.Ack(); err != nil {
			t.Fatalf("ack of a message held across the cancel: %v", err)
		}
	}
	// The consumer of the queue still there is cancelled too.
	for consumerCount(t, ctx, other, qb.Name) != 0 {
		if ctx.Err() != nil {
			t.Fatal("the other queue's consumer was not cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !conn.Connected() {
		t.Fatal("the connection went down with the consumer")
	}

	// Consume revives it, declaring the deleted queue again.
	if err := cons.Consume(ctx); err != nil {
		t.Fatalf("Consume after the cancel: %v", err)
	}
	if cons.Err() != nil || isClosed(cons.Done()) {
		t.Fatalf("revived consumer: Err %v", cons.Err())
	}
	if n := consumerCount(t, ctx, other, qb.Name); n != 1 {
		t.Errorf("%d consumers on %s after the revival, want 1", n, qb.Name)
	}
	publish("a")
	publish("b")
	driveUntil(t, ctx, conn, func() bool { return in.len() == 2 })
	var bodies []any
	for _, m := range in.take() {
		body, _ := m.Decode()
		bodies = append(bodies, body)
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if !(len(bodies) == 2 && bodies[0] != bodies[1]) {
		t.Fatalf("after the revival: %v, want a and b", bodies)
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(cons.Err(), messaging.ErrStopped) {
		t.Errorf("Err after Close = %v", cons.Err())
	}
}

// A ConsumerWorker whose consumer the broker cancels restarts on a new
// connection, declaring the deleted queue again, and consumes what is
// published to it afterwards.
func TestConsumerWorkerRestartsAfterBrokerCancel(t *testing.T) {
	cc := newCancelCase(t)
	ctx, conn, other, name := cc.ctx, cc.conn, cc.other, cc.name
	q := messaging.NewQueue(name, messaging.NewExchange(name, messaging.Direct), name)
	bodies := make(chan any, 16)
	ready := make(chan []*messaging.Consumer, 4)
	w, err := messaging.NewConsumerWorker(conn, messaging.ConsumerWorkerOptions{
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{q},
				Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
					bodies <- body
					_ = m.Ack()
				}}}}, nil
		},
		OnConsumeReady:  func(_ *messaging.Connection, cs []*messaging.Consumer) { ready <- cs },
		SafetyInterval:  100 * time.Millisecond,
		RestartInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	defer func() {
		w.Stop()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	first := <-ready
	cc.deleteQueue(name)
	select {
	case <-ready:
	case err := <-ran:
		t.Fatalf("Run returned %v instead of restarting", err)
	case <-ctx.Done():
		t.Fatal("the worker did not restart after the broker cancelled its consumer")
	}
	if err := first[0].Err(); !errors.Is(err, messaging.ErrCancelledByBroker) {
		t.Errorf("first consumer's Err = %v", err)
	}
	p, err := messaging.NewProducer(other, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, "after", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-bodies:
		if body != "after" {
			t.Fatalf("got %v", body)
		}
	case <-ctx.Done():
		t.Fatal("the restarted worker did not consume from the re-declared queue")
	}
}

// The memory transport, like Kombu's virtual transports, has no broker
// cancel: a consumer of a deleted queue keeps consuming its name, and gets
// what is published once the queue is declared again.
func TestMemoryConsumerOutlivesQueueDelete(t *testing.T) {
	ctx := testCtx(t)
	conn := memConn(t)
	q, p := lifeQueue(t, ctx, conn, 1)
	var in inbox
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{in.cb}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	driveUntil(t, ctx, conn, func() bool { return in.len() == 1 })
	in.take()[0].Ack()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.DeleteQueue(ctx, q.Name, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, 1, messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	driveUntil(t, ctx, conn, func() bool { return in.len() == 1 })
	if isClosed(cons.Done()) || cons.Err() != nil {
		t.Fatalf("memory consumer ended: %v", cons.Err())
	}
}

// A SimpleQueue whose queue is deleted on RabbitMQ reports the cancel from
// Get once; the next Get declares the queue again and consumes from it.
func TestSimpleQueueAfterBrokerCancel(t *testing.T) {
	cc := newCancelCase(t)
	ctx, conn, other, name := cc.ctx, cc.conn, cc.other, cc.name
	sq, err := messaging.NewSimpleQueue(ctx, conn, name, messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	if err := sq.Put(ctx, "one", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := sq.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
	cc.deleteQueue(name)
	if _, err := sq.Get(ctx); !errors.Is(err, messaging.ErrCancelledByBroker) {
		t.Fatalf("Get after the queue was deleted = %v, want ErrCancelledByBroker", err)
	}
	got := make(chan error, 1)
	go func() {
		m, err := sq.Get(ctx)
		if err == nil {
			if body, _ := m.Decode(); body != "two" {
				err = errors.New("unexpected body")
			}
			_ = m.Ack()
		}
		got <- err
	}()
	// Once the Get above re-declared the queue, a Put reaches it.
	for consumerCount(t, ctx, other, name) != 1 {
		if ctx.Err() != nil {
			t.Fatal("Get did not consume again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := sq.Put(ctx, "two", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Get after the revival: %v", err)
	}
}
