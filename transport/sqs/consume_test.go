package sqs

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestAckDuringLongPoll: an acknowledgement reaches SQS while the same
// connection's receiver sits in a long poll (wait_time_seconds=5 on an
// empty queue): acks run on the executor, not behind the poll.
func TestAckDuringLongPoll(t *testing.T) {
	e := newEnv(t, map[string]any{"wait_time_seconds": 5})
	const q = "ack.longpoll"
	ch := e.channel(nil, q)
	if err := ch.Publish(e.ctx, &transport.Message{Body: []byte("m")}, "", q, transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	ch.Qos(e.ctx, 2) // room for a second receive once m is delivered
	col := newCollector()
	if _, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	m := col.wait(t, 1, 10*time.Second)[0]
	// The receiver is now in a 5 s long poll of the empty queue.
	var inflight bool
	e.h.Call(e.ctx, func() { inflight = ch.ch.Store().(*store).rx.inflight != nil })
	if !inflight {
		t.Fatal("no long poll in flight after the delivery")
	}
	start := time.Now()
	if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	waitSize(t, e, ch, q, 0) // goaws counts in-flight messages: 0 once deleted
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the ack took %v to reach SQS: it waited for the long poll", d)
	}
}

// TestGoroutinesPerConnection: a connection runs two goroutines of its
// own (executor and receiver) however many channels and queues it
// consumes; nothing runs per queue or per channel. HTTP keep-alive
// connections of net/http are counted apart (two goroutines each, at most
// a few).
func TestGoroutinesPerConnection(t *testing.T) {
	e := newEnv(t, map[string]any{"wait_time_seconds": 1})
	count := func() int {
		time.Sleep(300 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	consume := func(channels, queues int) {
		for c := range channels {
			var names []string
			for i := range queues {
				names = append(names, fmt.Sprintf("g%d.q%d", c, i))
			}
			ch := e.channel(nil, names...)
			for _, q := range names {
				if _, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, func(*transport.Message) {}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	base := count()
	consume(1, 1)
	one := count()
	consume(4, 5)
	many := count()
	t.Logf("goroutines: %d before, %d with 1 channel on 1 queue, %d with 4 more channels on 20 more queues", base, one, many)
	if many-one > 4 {
		t.Fatalf("%d more goroutines for 4 channels and 20 queues: something runs per channel or per queue", many-one)
	}
}
