package messaging_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

func TestWorkersSettle(t *testing.T) {
	ch := &fakeChannel{}
	w := messaging.NewWorkers(messaging.WorkersOptions{N: 3, Queue: 8})
	var handled atomic.Int32
	bad := errors.New("boom")
	cb := w.Callback(func(ctx context.Context, body any, m *messaging.Message) error {
		handled.Add(1)
		switch body {
		case "fail":
			return bad
		case "self":
			return m.Requeue()
		}
		return nil
	})
	msgs := map[string]string{"ok1": "ok", "ok2": "ok", "bad": "fail", "self": "self"}
	for tag, body := range msgs {
		cb(body, testMessage(ch, &transport.Message{DeliveryInfo: transport.DeliveryInfo{DeliveryTag: tag}}, false))
	}
	if err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if handled.Load() != 4 {
		t.Errorf("%d handled", handled.Load())
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	acks := map[string]bool{}
	for _, a := range ch.acks {
		acks[a] = true
	}
	rejects := map[string]bool{}
	for _, r := range ch.rejects {
		rejects[r] = true
	}
	if len(ch.acks) != 2 || !acks["ok1"] || !acks["ok2"] || len(ch.rejects) != 2 || !rejects["bad:false"] || !rejects["self:true"] {
		t.Errorf("acks %v rejects %v", ch.acks, ch.rejects)
	}
}

// A full queue never blocks the hub: the delivery is requeued and counted.
func TestWorkersOverflow(t *testing.T) {
	ch := &fakeChannel{}
	block := make(chan struct{})
	started := make(chan struct{}, 1)
	w := messaging.NewWorkers(messaging.WorkersOptions{N: 1, Queue: 1, RequeueOnError: true})
	cb := w.Callback(func(ctx context.Context, body any, m *messaging.Message) error {
		started <- struct{}{}
		select {
		case <-block:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	cb(1, testMessage(ch, &transport.Message{DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "running"}}, false))
	<-started
	cb(2, testMessage(ch, &transport.Message{DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "queued"}}, false))
	cb(3, testMessage(ch, &transport.Message{DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "overflow"}}, false))
	if w.Overflows() != 1 {
		t.Errorf("overflows %d", w.Overflows())
	}
	// Close cancels the running handler (its error requeues it) and
	// requeues the queued message.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cb(4, testMessage(ch, &transport.Message{DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "late"}}, false))
	ch.mu.Lock()
	defer ch.mu.Unlock()
	got := map[string]bool{}
	for _, r := range ch.rejects {
		got[r] = true
	}
	for _, want := range []string{"overflow:true", "running:true", "queued:true", "late:true"} {
		if !got[want] {
			t.Errorf("missing %s in %v", want, ch.rejects)
		}
	}
	if len(ch.acks) != 0 {
		t.Errorf("acks %v", ch.acks)
	}
}

func TestWorkersConcurrent(t *testing.T) {
	ch := &fakeChannel{}
	w := messaging.NewWorkers(messaging.WorkersOptions{N: 4, Queue: 1000})
	var n atomic.Int32
	cb := w.Callback(func(context.Context, any, *messaging.Message) error { n.Add(1); return nil })
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				cb(j, testMessage(ch, &transport.Message{}, false))
			}
		}()
	}
	wg.Wait()
	if err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 400 || w.Overflows() != 0 {
		t.Errorf("handled %d, overflows %d", n.Load(), w.Overflows())
	}
	w.Close()
}
