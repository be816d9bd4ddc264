package amqp

import (
	"errors"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// cancelNote is one call of ConsumeOptions.OnCancel.
type cancelNote struct {
	tag string
	err error
}

// cancelRecorder records OnCancel calls and how many deliveries preceded
// each (both on the hub, so in hub order).
type cancelRecorder struct {
	col   *collector
	seen  int // deliveries so far; hub-owned
	notes chan cancelNote
	after chan int // deliveries seen before each OnCancel
}

func newCancelRecorder() *cancelRecorder {
	r := &cancelRecorder{col: newCollector(), notes: make(chan cancelNote, 4), after: make(chan int, 4)}
	r.col.onHub = func(*transport.Message) { r.seen++ }
	return r
}

func (r *cancelRecorder) onCancel(tag string, err error) {
	r.after <- r.seen
	r.notes <- cancelNote{tag, err}
}

func (r *cancelRecorder) next(tb testing.TB) (cancelNote, int) {
	tb.Helper()
	select {
	case n := <-r.notes:
		return n, <-r.after
	case <-time.After(wait):
		tb.Fatal("OnCancel was not called")
		return cancelNote{}, 0
	}
}

// TestBrokerCancelCallsOnCancel: deleting a consumed queue from another
// connection makes RabbitMQ cancel the consumer; OnCancel runs after the
// deliveries the consumer got, with an error naming it; its unacked message
// can still be acked, the channel consumes again from the re-declared
// queue, and a consumer cancelled by its user hears nothing.
func TestBrokerCancelCallsOnCancel(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	for _, b := range []string{"a", "b"} {
		mustPublish(t, ch, msg(b), "", q)
	}
	rec := newCancelRecorder()
	tag, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q, OnCancel: rec.onCancel}, rec.col.fn)
	if err != nil {
		t.Fatal(err)
	}
	held := []*transport.Message{rec.col.next(t), rec.col.next(t)}
	// A user-cancelled consumer on another queue must not hear of anything.
	q2 := e.queue(ch, transport.Queue{})
	rec2 := newCancelRecorder()
	tag2, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q2, OnCancel: rec2.onCancel}, rec2.col.fn)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Cancel(ctxT(t), tag2); err != nil {
		t.Fatal(err)
	}

	other := dial(t, nil).channel()
	if _, err := other.DeleteQueue(ctxT(t), q, false, false); err != nil {
		t.Fatalf("delete the consumed queue: %v", err)
	}
	if _, err := other.DeleteQueue(ctxT(t), q2, false, false); err != nil {
		t.Fatal(err)
	}
	note, before := rec.next(t)
	if note.tag != tag || !errors.Is(note.err, transport.ErrConsumerCancelled) {
		t.Fatalf("OnCancel(%q, %v), want tag %q and ErrConsumerCancelled", note.tag, note.err, tag)
	}
	if before != 2 {
		t.Errorf("OnCancel ran after %d deliveries, want after both", before)
	}
	t.Logf("OnCancel error: %v", note.err)
	if e.conn.Err() != nil {
		t.Fatalf("connection after the cancel: %v", e.conn.Err())
	}
	// The channel is fine: settling a message of the cancelled consumer is
	// no channel error (an unknown tag would close the channel, 406).
	for _, m := range held {
		if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
			t.Fatal(err)
		}
	}
	// Cancelling the tag the broker ended is a no-op.
	if err := ch.Cancel(ctxT(t), tag); err != nil {
		t.Fatalf("Cancel of a broker-cancelled consumer: %v", err)
	}
	// The same channel consumes again once the queue is back.
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	rec3 := newCancelRecorder()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q, OnCancel: rec3.onCancel}, rec3.col.fn); err != nil {
		t.Fatalf("consume from the re-declared queue: %v", err)
	}
	mustPublish(t, other, msg("again"), "", q)
	m := rec3.col.next(t)
	if string(m.Body) != "again" || m.DeliveryInfo.Redelivered {
		t.Fatalf("after re-declaring: %q redelivered=%v", m.Body, m.DeliveryInfo.Redelivered)
	}
	if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, ch, q, 0)
	select {
	case n := <-rec2.notes:
		t.Fatalf("OnCancel of a consumer its user cancelled: %v", n.err)
	default:
	}
	// Posts to the hub run in order, and "again" was posted long after the
	// user's Cancel ended rec2's forwarder and after the broker's cancel of
	// rec: an OnCancel for either would have run before it.
	if len(rec.notes) != 0 {
		t.Fatal("OnCancel called twice")
	}
}

// TestRestartRefusedCallsOnCancel: a consumer whose queue disappeared
// while the connection was down (declared by another connection, so not
// re-declared by the recovery) is refused on reconnection; OnCancel gets
// the broker's refusal, and the recovered connection works.
func TestRestartRefusedCallsOnCancel(t *testing.T) {
	e, p := dialProxy(t, with(fastRecovery, "max_retries", "none"))
	owner := dial(t, nil)
	och := owner.channel()
	q := owner.queue(och, transport.Queue{})
	keep := owner.queue(och, transport.Queue{})
	ch := e.channel()
	rec := newCancelRecorder()
	tag, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q, OnCancel: rec.onCancel}, rec.col.fn)
	if err != nil {
		t.Fatal(err)
	}
	kept := newCancelRecorder()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: keep, OnCancel: kept.onCancel}, kept.col.fn); err != nil {
		t.Fatal(err)
	}
	p.down.Store(true)
	p.cut()
	for p.refused.Load() < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := och.DeleteQueue(ctxT(t), q, false, false); err != nil {
		t.Fatal(err)
	}
	p.down.Store(false)
	note, _ := rec.next(t)
	if note.tag != tag || !errors.Is(note.err, transport.ErrConsumerCancelled) || !errors.Is(note.err, transport.ErrNotFound) {
		t.Fatalf("OnCancel(%q, %v), want tag %q, ErrConsumerCancelled and ErrNotFound", note.tag, note.err, tag)
	}
	t.Logf("OnCancel error: %v", note.err)
	// The other consumer was restarted and still delivers.
	mustPublish(t, och, msg("kept"), "", keep)
	if m := kept.col.next(t); string(m.Body) != "kept" {
		t.Fatalf("got %q", m.Body)
	}
	select {
	case n := <-kept.notes:
		t.Fatalf("OnCancel of the consumer that was restarted: %v", n.err)
	default:
	}
}
