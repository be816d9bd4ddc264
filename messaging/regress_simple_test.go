package messaging_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// A SimpleQueue that returned one message and was closed must not keep the
// rest of the queue hostage in its buffer.
func TestSimpleQueueCloseRequeuesBuffered(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q, err := messaging.NewSimpleQueue(ctx, c, "sq", messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := q.Put(ctx, i, messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := q.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Ack()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := messaging.NewSimpleQueue(ctx, c, "sq", messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	n, err := q2.Qsize(ctx)
	t.Logf("Qsize after closing the first SimpleQueue: %d, %v (9 expected)", n, err)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := q2.Get(short); err != nil {
		t.Errorf("second SimpleQueue.Get: %v (9 messages were published and not consumed)", err)
	}
}

// Connection.Close from another goroutine while DrainEvents runs, with
// messages delivered and unacked: all of them must be back in the queue.
func TestCloseWhileDraining(t *testing.T) {
	for iter := 0; iter < 50; iter++ {
		ctx := testCtx(t)
		url := "memory://review-cwd-" + messaging.NewUUID()[:8]
		c, err := messaging.NewConnection(url, messaging.Options{})
		if err != nil {
			t.Fatal(err)
		}
		q := messaging.NewQueue("cwd", messaging.NewExchange("cwd", messaging.Direct), "cwd")
		p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "cwd"})
		ch, err := c.DefaultChannel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Declare(ctx, ch); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			p.Publish(ctx, i, messaging.PublishOptions{})
		}
		var mu sync.Mutex
		var held []*messaging.Message
		cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q}, PrefetchCount: 10,
			Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) {
				mu.Lock()
				held = append(held, m)
				n := len(held)
				mu.Unlock()
				if n%2 == 0 {
					go m.Ack()
				}
			}}})
		if err := cons.Consume(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			for {
				if err := c.DrainEvents(ctx); err != nil {
					done <- err
					return
				}
			}
		}()
		time.Sleep(time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, messaging.ErrClosed) {
			t.Errorf("DrainEvents after Close: %v", err)
		}
		mu.Lock()
		acked := 0
		for _, m := range held {
			if m.State() == messaging.Acked {
				acked++
			}
		}
		mu.Unlock()
		c2, _ := messaging.NewConnection(url, messaging.Options{})
		ch2, err := c2.DefaultChannel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info, err := q.DeclareQueue(ctx, ch2, true)
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages+acked != 100 {
			t.Fatalf("iter %d: %d left + %d acked != 100 (delivered %d)", iter, info.Messages, acked, len(held))
		}
		c2.Close()
	}
}
