package messaging_test

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// drainN drains until n messages were collected by got.
func drainN(t *testing.T, ctx context.Context, c *messaging.Connection, n int, count func() int) {
	t.Helper()
	for count() < n {
		if err := c.DrainEvents(ctx); err != nil {
			t.Fatalf("after %d of %d: %v", count(), n, err)
		}
	}
}

type collector struct {
	mu   sync.Mutex
	msgs []*messaging.Message
	vals []any
}

func (c *collector) cb(body any, m *messaging.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	c.vals = append(c.vals, body)
}

func (c *collector) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func TestMemoryRoutingAndCodecs(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	stocks := messaging.NewExchange("stocks", messaging.Topic)
	us := messaging.NewQueue("us", stocks, "stock.us.*")
	all := messaging.NewQueue("all", stocks, "stock.#")
	var gotUS, gotAll collector
	for _, x := range []struct {
		q   messaging.Queue
		col *collector
	}{{us, &gotUS}, {all, &gotAll}} {
		cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{x.q},
			Callbacks: []messaging.Callback{x.col.cb}, Accept: []string{"json", "msgpack"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cons.Consume(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: stocks, Compression: "zstd"})
	if err := p.Publish(ctx, map[string]any{"sym": "AAPL"}, messaging.PublishOptions{RoutingKey: "stock.us.nasdaq",
		Headers: map[string]any{"h": "v"}, Priority: 5, CorrelationID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, []any{"OSE", 1.5}, messaging.PublishOptions{RoutingKey: "stock.europe.OSE",
		Serializer: "msgpack", Compression: "gzip"}); err != nil {
		t.Fatal(err)
	}
	drainN(t, ctx, c, 3, func() int { return gotUS.n() + gotAll.n() })
	if !reflect.DeepEqual(gotUS.vals, []any{map[string]any{"sym": "AAPL"}}) {
		t.Errorf("us got %v", gotUS.vals)
	}
	if len(gotAll.vals) != 2 || !reflect.DeepEqual(gotAll.vals[1], []any{"OSE", 1.5}) {
		t.Errorf("all got %v", gotAll.vals)
	}
	m := gotUS.msgs[0]
	if m.Headers["h"] != "v" || m.Headers["compression"] != "application/zstd" || m.Properties.CorrelationID != "c1" ||
		m.DeliveryInfo.Exchange != "stocks" || m.DeliveryInfo.RoutingKey != "stock.us.nasdaq" || m.ContentType != "application/json" {
		t.Errorf("message %+v %+v %+v", m.Headers, m.Properties, m.DeliveryInfo)
	}
	for _, m := range append(gotUS.msgs, gotAll.msgs...) {
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
	}
}

func TestMemoryRequeueRedelivers(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q, err := messaging.NewSimpleQueue(ctx, c, "rq", messaging.SimpleQueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Put(ctx, "again", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := q.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Requeue(); err != nil {
		t.Fatal(err)
	}
	m2, err := q.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m2.Decode(); v != "again" || !m2.DeliveryInfo.Redelivered {
		t.Errorf("redelivery %v redelivered=%v", v, m2.DeliveryInfo.Redelivered)
	}
	if err := m2.Reject(); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Qsize(ctx); err != nil || n != 0 {
		t.Errorf("after reject: %d, %v", n, err)
	}
}

// Mandatory messages that no queue takes come back through OnReturn.
func TestMemoryOnReturn(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	returned := make(chan *transport.Returned, 1)
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: messaging.NewExchange("void", ""),
		OnReturn: func(r *transport.Returned) { returned <- r }})
	if err := p.Publish(ctx, "lost", messaging.PublishOptions{RoutingKey: "nobody", Mandatory: true}); err != nil {
		t.Fatal(err)
	}
	h, _ := c.Hub()
	for len(returned) == 0 {
		if err := h.RunOnce(10 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	r := <-returned
	if r.RoutingKey != "nobody" || string(r.Message.Body) != "lost" {
		t.Errorf("returned %+v", r)
	}
}

// The caller runs the hub (RegisterWithEventLoop + h.Run): callbacks run
// there, and publishing from other goroutines works meanwhile.
func TestMemoryUserHub(t *testing.T) {
	ctx := testCtx(t)
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := memConn(t)
	if err := c.RegisterWithEventLoop(h); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error)
	go func() { ran <- h.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
		c.Close()
		h.Close()
	}()
	got := make(chan any, 100)
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "uh"}},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) { got <- body; m.Ack() }}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "uh"})
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := p.Publish(ctx, i, messaging.PublishOptions{}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	var vals []int
	for len(vals) < 5 {
		select {
		case v := <-got:
			vals = append(vals, int(v.(int64)))
		case <-ctx.Done():
			t.Fatalf("got %v", vals)
		}
	}
	sort.Ints(vals)
	if !reflect.DeepEqual(vals, []int{0, 1, 2, 3, 4}) {
		t.Errorf("got %v", vals)
	}
	if err := c.DrainEvents(ctx); !errors.Is(err, hub.ErrRunning) {
		t.Errorf("DrainEvents while the hub runs: %v", err)
	}
	if err := cons.Cancel(ctx); err != nil {
		t.Error(err)
	}
}

// A ConsumerWorker on memory consumes until stopped.
func TestMemoryConsumerWorker(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.NewQueue("jobs", messaging.NewExchange("jobs", ""), "jobs")
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "jobs"})
	for i := 0; i < 3; i++ {
		if err := p.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	var w *messaging.ConsumerWorker
	var mu sync.Mutex
	var seen []any
	w, err := messaging.NewConsumerWorker(c, messaging.ConsumerWorkerOptions{
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{q}, Callbacks: []messaging.Callback{
				func(body any, m *messaging.Message) {
					m.Ack()
					mu.Lock()
					seen = append(seen, body)
					if len(seen) == 3 {
						w.Stop()
					}
					mu.Unlock()
				}}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seen, []any{int64(0), int64(1), int64(2)}) {
		t.Errorf("seen %v", seen)
	}
}
