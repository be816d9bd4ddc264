package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// Kombu test case 75 (test_produce__consume and friends).
func TestSimpleQueue(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q, err := messaging.NewSimpleQueue(ctx, c, "simple", messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Queue().Name != "simple" || q.Queue().Exchange.Name != "simple" || !q.Queue().Durable {
		t.Errorf("queue %+v", q.Queue())
	}
	if err := q.Put(ctx, map[string]any{"Hello": "World"}, messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := q.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m.Decode(); err != nil || v.(map[string]any)["Hello"] != "World" {
		t.Errorf("payload %v, %v", v, err)
	}
	if m.Acknowledged() {
		t.Error("Get acknowledged the message")
	}
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.GetNowait(ctx); !errors.Is(err, messaging.ErrEmpty) {
		t.Errorf("GetNowait on empty: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := q.Get(short); !errors.Is(err, messaging.ErrEmpty) || !errors.Is(err, messaging.ErrTimeout) {
		t.Errorf("Get on empty: %v", err)
	}
	if n, err := q.Qsize(ctx); err != nil || n != 0 {
		t.Errorf("Qsize = %d, %v", n, err)
	}
	// Clear returns the purged count. Stop consuming first so that the
	// messages stay in the queue.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := messaging.NewSimpleQueue(ctx, c, "simple", messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	for i := 0; i < 3; i++ {
		if err := q2.Put(ctx, i, messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q2.Qsize(ctx); err != nil || n != 3 {
		t.Errorf("Qsize = %d, %v", n, err)
	}
	m, err = q2.GetNowait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Decode(); v != int64(0) {
		t.Errorf("GetNowait gave %v", v)
	}
	m.Ack()
	if n, err := q2.Clear(ctx); err != nil || n != 2 {
		t.Errorf("Clear = %d, %v", n, err)
	}
	if _, err := q.Get(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
}

func TestSimpleBuffer(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q, err := messaging.NewSimpleBuffer(ctx, c, "buf", messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	qq := q.Queue()
	if qq.Durable || !qq.Exclusive || !qq.AutoDelete || qq.Exchange.Durable || !qq.Exchange.AutoDelete {
		t.Errorf("queue %+v", qq)
	}
	if err := q.Put(ctx, "text", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := q.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Decode(); v != "text" || m.Properties.DeliveryMode != 1 {
		t.Errorf("body %v, delivery mode %d", v, m.Properties.DeliveryMode)
	}
	// No acknowledgement needed.
	if err := m.Ack(); err != nil {
		t.Error(err)
	}
}
