package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/memory"
)

var ctx = context.Background()

// runHub runs a hub on a goroutine of the test until cleanup.
func runHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(c) }()
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub.Run: %v", err)
		}
		h.Close()
	})
	return h
}

// dial opens a connection to the broker named name on a running hub.
func dial(t *testing.T, h *hub.Hub, name string, opts map[string]any) transport.Conn {
	t.Helper()
	tr, err := memory.New(transport.Config{Hostname: name, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tr.Dial(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func open1(t *testing.T, name string) (*hub.Hub, transport.Channel) {
	t.Helper()
	h := runHub(t)
	ch, err := dial(t, h, name, nil).Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h, ch
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func pub(t *testing.T, ch transport.Channel, ex, rk, body string) {
	t.Helper()
	must(t, ch.Publish(ctx, &transport.Message{Body: []byte(body)}, ex, rk, transport.PublishOptions{}))
}

func getBody(t *testing.T, ch transport.Channel, q string) string {
	t.Helper()
	m, err := ch.Get(ctx, q, true)
	if errors.Is(err, transport.ErrEmpty) {
		return "<empty>"
	}
	must(t, err)
	return string(m.Body)
}

// wait receives from c, failing the test if nothing comes (a deadline, not
// a measurement).
func wait[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		var zero T
		return zero
	}
}

func TestInfo(t *testing.T) {
	tr, err := memory.New(transport.Config{})
	must(t, err)
	info := tr.Info()
	if info.Driver != "memory" || info.Fanout != "broadcast" || info.Priorities ||
		!slices.Equal(info.ExchangeTypes, []string{"direct", "topic", "fanout", "headers"}) {
		t.Fatalf("%+v", info)
	}
	if _, err := memory.New(transport.Config{Options: map[string]any{"deadletter_queue": 1}}); err == nil {
		t.Error("bad option accepted")
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	h, _ := hub.New(hub.Options{})
	defer h.Close()
	if _, err := tr.Dial(c, h); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: %v", err)
	}
}

// Kombu test_basic_publish__get__consume__restore (memory).
func TestPublishGetConsume(t *testing.T) {
	_, ch := open1(t, "t-pgc")
	must(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "amq.direct"}))
	for _, q := range []string{"q1", "q2"} {
		_, err := ch.DeclareQueue(ctx, transport.Queue{Name: q})
		must(t, err)
		must(t, ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: "amq.direct", RoutingKey: q}))
	}
	pub(t, ch, "amq.direct", "q1", "first")
	if got := getBody(t, ch, "q1"); got != "first" {
		t.Fatalf("get %q", got)
	}
	if got := getBody(t, ch, "q1"); got != "<empty>" {
		t.Fatalf("second get %q", got)
	}
	got := make(chan *transport.Message, 1)
	tag, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q2", NoAck: true}, func(m *transport.Message) { got <- m })
	must(t, err)
	pub(t, ch, "amq.direct", "q2", "second")
	m := wait(t, got)
	di := m.DeliveryInfo
	if string(m.Body) != "second" || di.Exchange != "amq.direct" || di.RoutingKey != "q2" ||
		di.ConsumerTag != tag || di.Queue != "q2" || di.Redelivered {
		t.Fatalf("%q %+v", m.Body, di)
	}
}

// The broker is shared by every transport with the same name, and only by
// those.
func TestSharedState(t *testing.T) {
	h := runHub(t)
	a, _ := dial(t, h, "t-shared", nil).Channel(ctx)
	b, _ := dial(t, h, "t-shared", nil).Channel(ctx)
	other, _ := dial(t, h, "t-other", nil).Channel(ctx)
	must(t, a.DeclareExchange(ctx, transport.Exchange{Name: "fx", Type: transport.Fanout}))
	must(t, b.DeclareExchange(ctx, transport.Exchange{Name: "fx", Type: transport.Fanout, Passive: true}))
	if err := other.DeclareExchange(ctx, transport.Exchange{Name: "fx", Passive: true}); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("another broker sees the exchange: %v", err)
	}
	must(t, b.BindQueue(ctx, transport.Binding{Queue: "fq", Exchange: "fx"}))
	pub(t, a, "fx", "", "hi")
	if got := getBody(t, b, "fq"); got != "hi" {
		t.Fatalf("got %q", got)
	}
	if got := getBody(t, other, "fq"); got != "<empty>" {
		t.Fatalf("other broker got %q", got)
	}
}

// Kombu test_produce_consume_fanout, plus copy isolation.
func TestFanoutCopies(t *testing.T) {
	_, ch := open1(t, "t-fanout")
	must(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "fx", Type: transport.Fanout}))
	for _, q := range []string{"f1", "f2"} {
		must(t, ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: "fx"}))
	}
	body := []byte("payload")
	m := &transport.Message{Body: body, Headers: map[string]any{"k": map[string]any{"n": "v"}}}
	must(t, ch.Publish(ctx, m, "fx", "", transport.PublishOptions{}))
	copy(body, "XXXXXXX")                      // the publisher reuses its buffer
	m.Headers["k"].(map[string]any)["n"] = "w" // and its headers
	m1, err := ch.Get(ctx, "f1", true)
	must(t, err)
	m1.Body[0] = 'Y' // a consumer scribbles on its delivery
	m1.Headers["k"].(map[string]any)["n"] = "z"
	m2, err := ch.Get(ctx, "f2", true)
	must(t, err)
	if string(m2.Body) != "payload" || m2.Headers["k"].(map[string]any)["n"] != "v" {
		t.Fatalf("second copy changed: %q %v", m2.Body, m2.Headers)
	}
	if m1.DeliveryInfo.DeliveryTag == m2.DeliveryInfo.DeliveryTag {
		t.Error("fanout copies share a delivery tag")
	}
	if getBody(t, ch, "f1") != "<empty>" || getBody(t, ch, "f2") != "<empty>" {
		t.Fatal("more than one copy per queue")
	}
}

// Restored messages go to the front in their original order; a requeued
// one to the back.
func TestRestoreAndRequeueOrder(t *testing.T) {
	h := runHub(t)
	conn := dial(t, h, "t-order", nil)
	ch, _ := conn.Channel(ctx)
	for _, s := range []string{"a", "b", "c", "d"} {
		pub(t, ch, "", "q", s)
	}
	must(t, ch.Qos(ctx, 2))
	got := make(chan *transport.Message, 10)
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(m *transport.Message) { got <- m })
	must(t, err)
	a, b := wait(t, got), wait(t, got)
	if string(a.Body) != "a" || string(b.Body) != "b" {
		t.Fatalf("got %q %q", a.Body, b.Body)
	}
	must(t, ch.Reject(a.DeliveryInfo.DeliveryTag, true)) // a to the back: c d a
	c := wait(t, got)
	must(t, ch.Close()) // b and c back to the front: b c d a
	ch2, _ := conn.Channel(ctx)
	var order []string
	for range 4 {
		m, err := ch2.Get(ctx, "q", true)
		must(t, err)
		order = append(order, string(m.Body))
		if !m.DeliveryInfo.Redelivered && string(m.Body) != "d" {
			t.Errorf("%q not marked redelivered", m.Body)
		}
		if string(m.Body) == "c" && m.DeliveryInfo.DeliveryTag != c.DeliveryInfo.DeliveryTag {
			t.Error("delivery tag changed on restore")
		}
	}
	if !slices.Equal(order, []string{"b", "c", "d", "a"}) {
		t.Fatalf("order %v, want [b c d a]", order)
	}
}

func TestNoRestoreOption(t *testing.T) {
	h := runHub(t)
	conn := dial(t, h, "t-norestore", map[string]any{"restore_on_close": "false"})
	ch, _ := conn.Channel(ctx)
	pub(t, ch, "", "q", "lost")
	got := make(chan *transport.Message, 1)
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(m *transport.Message) { got <- m })
	must(t, err)
	wait(t, got)
	must(t, ch.Close())
	ch2, _ := conn.Channel(ctx)
	if b := getBody(t, ch2, "q"); b != "<empty>" {
		t.Fatalf("restored %q with restore_on_close=false", b)
	}
}

func TestDeleteQueueIfUnused(t *testing.T) {
	h, ch := open1(t, "t-unused")
	_, err := ch.DeclareQueue(ctx, transport.Queue{Name: "q"})
	must(t, err)
	tag, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(*transport.Message) {})
	must(t, err)
	must(t, h.Call(ctx, func() {})) // the hub has registered the consumer
	if _, err = ch.DeleteQueue(ctx, "q", true, false); !errors.Is(err, transport.ErrPreconditionFailed) {
		t.Fatalf("if_unused with a consumer: %v", err)
	}
	must(t, ch.Cancel(ctx, tag))
	must(t, h.Call(ctx, func() {}))
	if _, err = ch.DeleteQueue(ctx, "q", true, false); err != nil {
		t.Fatalf("if_unused without consumers: %v", err)
	}
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: "q", Passive: true}); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("deleted queue still there: %v", err)
	}
}

// Consumers of one queue on two hubs share its messages: each message is
// delivered once.
func TestConsumersOnTwoHubs(t *testing.T) {
	const n = 2000
	var mu sync.Mutex
	seen := map[string]int{}
	all := make(chan struct{})
	total := 0
	for range 2 {
		h := runHub(t)
		ch, err := dial(t, h, "t-twohubs", nil).Channel(ctx)
		must(t, err)
		must(t, ch.Qos(ctx, 10))
		_, err = ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(m *transport.Message) {
			mu.Lock()
			seen[string(m.Body)]++
			total++
			if total == n {
				close(all)
			}
			mu.Unlock()
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		})
		must(t, err)
	}
	h := runHub(t)
	p, _ := dial(t, h, "t-twohubs", nil).Channel(ctx)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				pub(t, p, "", "q", fmt.Sprint(i))
			}
		})
	}
	wg.Wait()
	wait(t, all)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("%d distinct messages", len(seen))
	}
	for k, v := range seen {
		if v != 1 {
			t.Fatalf("message %s delivered %d times", k, v)
		}
	}
}

func TestConnClose(t *testing.T) {
	h := runHub(t)
	conn := dial(t, h, "t-connclose", nil)
	ch, _ := conn.Channel(ctx)
	if conn.Err() != nil {
		t.Fatal(conn.Err())
	}
	must(t, conn.Close())
	must(t, conn.Close())
	<-conn.Done()
	if !errors.Is(conn.Err(), transport.ErrClosed) {
		t.Fatalf("Err = %v", conn.Err())
	}
	if _, err := conn.Channel(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Channel after Close: %v", err)
	}
	if err := ch.Publish(ctx, &transport.Message{}, "", "q", transport.PublishOptions{}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Publish on a channel of a closed connection: %v", err)
	}
}
