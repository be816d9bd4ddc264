package amqp

import (
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// stallExec parks the executor until the returned func is called, so that
// ops enqueued meanwhile are taken as one batch.
func stallExec(c *conn) func() {
	gate := make(chan struct{})
	started := make(chan struct{})
	c.enqueue(op{kind: opEvent, ev: func() { close(started); <-gate }})
	<-started
	return func() { close(gate) }
}

func syncExec(t *testing.T, c *conn) {
	if err := c.do(ctxT(t), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// Ack then Reject(requeue) of the same tag: the first settlement must win
// (doc: double settlements are dropped). Here both land in one batch.
func TestAckThenRejectSameBatchAcks(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true})
	mustPublish(t, ch, msg("x"), "", q)
	m, err := ch.Get(ctxT(t), q, false)
	if err != nil {
		t.Fatal(err)
	}
	c := ch.(*channel).c
	release := stallExec(c)
	_ = ch.Ack(m.DeliveryInfo.DeliveryTag)
	_ = ch.Reject(m.DeliveryInfo.DeliveryTag, true)
	release()
	syncExec(t, c)
	time.Sleep(300 * time.Millisecond)
	if n := queueDepth(t, ch, q).Messages; n != 0 {
		t.Fatalf("message acked first is back in the queue: ready=%d (the later Reject(requeue) won)", n)
	}
}

// Double ack on a channel in noMulti mode (after a no-ack Get) reaches the
// broker: 406 closes the channel, and the other unacked message is requeued.
func TestDoubleAckAfterNoAckGetDropped(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true})
	for range 3 {
		mustPublish(t, ch, msg("x"), "", q)
	}
	if _, err := ch.Get(ctxT(t), q, true); err != nil { // switches to noMulti
		t.Fatal(err)
	}
	m1, err := ch.Get(ctxT(t), q, false)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ch.Get(ctxT(t), q, false)
	if err != nil {
		t.Fatal(err)
	}
	_ = m2
	c := ch.(*channel).c
	_ = ch.Ack(m1.DeliveryInfo.DeliveryTag)
	syncExec(t, c)
	_ = ch.Ack(m1.DeliveryInfo.DeliveryTag)
	syncExec(t, c)
	time.Sleep(500 * time.Millisecond)
	if n := queueDepth(t, ch, q).Messages; n != 0 {
		t.Fatalf("double ack cost the channel: unacked m2 requeued, ready=%d", n)
	}
}

// Same, with >maxSettled out-of-order settlements (no broker needed: pure settler).
func TestSettlerDoubleAfterOverflowDropped(t *testing.T) {
	var s settler
	// tag 1 held; settle 2..maxSettled+2
	tags := make([]uint64, 0, maxSettled+2)
	for i := uint64(2); i <= maxSettled+2; i++ {
		tags = append(tags, i)
	}
	s.plan(tags)
	_, singles, dups := s.plan([]uint64{5})
	if dups != 1 || len(singles) != 0 {
		t.Fatalf("double ack of tag 5 after overflow is sent again: singles=%v dups=%d", singles, dups)
	}
}
