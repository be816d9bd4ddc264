package messaging_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// Messages that the decode pool prepares off the hub reach the callbacks
// in their queue's order, interleaved with those decoded on the hub; a
// queue's message waiting for the pool does not hold up another queue.
func TestDecodePoolKeepsQueueOrder(t *testing.T) {
	ctx := testCtx(t)
	url := "memory://order-" + messaging.NewUUID()[:8]
	c, err := messaging.NewConnection(url, messaging.Options{InlineDecodeLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	qs := []messaging.Queue{{Name: "o1"}, {Name: "o2"}}
	var mu sync.Mutex
	got := map[string][]int{}
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: qs,
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			mu.Lock()
			got[m.DeliveryInfo.Queue] = append(got[m.DeliveryInfo.Queue], int(body.(map[string]any)["n"].(int64)))
			mu.Unlock()
			m.Ack()
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{})
	const n = 300
	for i := range n {
		// Small, padded past the inline limit, or compressed.
		body := map[string]any{"n": i}
		opts := messaging.PublishOptions{RoutingKey: qs[i%2].Name}
		switch i % 3 {
		case 1:
			body["pad"] = strings.Repeat("x", 200)
		case 2:
			opts.Compression = "zlib"
		}
		if err := p.Publish(ctx, body, opts); err != nil {
			t.Fatal(err)
		}
	}
	for {
		mu.Lock()
		done := len(got["o1"])+len(got["o2"]) == n
		mu.Unlock()
		if done {
			break
		}
		if err := c.DrainEvents(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for qi, q := range qs {
		for k, v := range got[q.Name] {
			if want := qi + 2*k; v != want {
				t.Fatalf("%s: delivery %d is message %d, want %d (order %v)", q.Name, k, v, want, got[q.Name])
			}
		}
	}
}

// Close joins the decode pool: goleak (TestMain) finds no goroutine left
// after closing a connection whose pool was busy, and the messages it had
// not handed over go back to their queue.
func TestCloseJoinsDecodePool(t *testing.T) {
	ctx := testCtx(t)
	url := "memory://closepool-" + messaging.NewUUID()[:8]
	c, err := messaging.NewConnection(url, messaging.Options{InlineDecodeLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	q := messaging.Queue{Name: "cp"}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: q.Name})
	const n = 50
	for i := range n {
		if err := p.Publish(ctx, map[string]any{"n": i}, messaging.PublishOptions{Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	var got sync.Map
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			got.Store(body.(map[string]any)["n"], true)
			m.Ack()
		}}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DrainEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	got.Range(func(any, any) bool { acked++; return true })
	c2, _ := messaging.NewConnection(url, messaging.Options{})
	defer c2.Close()
	ch, err := c2.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left, err := q.Purge(ctx, ch)
	if err != nil || acked+left != n || acked == 0 {
		t.Errorf("%d acknowledged and %d back in the queue (err %v), want %d in all", acked, left, err, n)
	}
}

// BenchmarkDecodeOffHub compares the two ways issue 10 offered to keep
// large and compressed bodies off the hub, in one run (see the README,
// "Bad input and failures"):
//
//   - pool: what consumers do (a Callbacks consumer, default options): the
//     connection's decode pool decompresses and deserializes bodies over
//     16 KiB or compressed, and the callback runs on the hub afterwards;
//   - lazy: the message reaches an OnMessage handler undecoded and is
//     decoded when the payload is first asked for. A Callbacks consumer
//     needs the payload at once, on the hub: lazy/hub is that, which is
//     also what consumers did before the pool. lazy/handoff is the best
//     case for laziness: the handler hands each message to a goroutine of
//     its own that decodes it (callbacks then run concurrently and out of
//     order, outside the hub).
//
// Each op publishes one message on another connection and waits until it
// was handled. hub-max-ms is the worst lateness of a 1 ms hub timer during
// the run: how long the hub was held.
//
//	go test -run XXX -bench DecodeOffHub -benchtime 20x ./messaging/
func BenchmarkDecodeOffHub(b *testing.B) {
	sizes := []struct {
		name     string
		body     []byte
		compress bool
	}{
		{"1KiB", jsonDoc(1 << 10), false},
		{"64KiB", jsonDoc(64 << 10), false},
		{"1MiB-zlib", jsonDoc(1 << 20), true},
		{"20MiB", jsonDoc(20 << 20), false},
	}
	for _, sz := range sizes {
		for _, mode := range []string{"pool", "lazy/hub", "lazy/handoff"} {
			b.Run(sz.name+"/"+mode, func(b *testing.B) { benchDecode(b, sz.body, sz.compress, mode) })
		}
	}
}

// jsonDoc is a JSON document of about n bytes: records of numbers and
// strings, the shape of a batch of task arguments.
func jsonDoc(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"items": [`)
	for i := 0; buf.Len() < n; i++ {
		if i > 0 {
			buf.WriteString(", ")
		}
		fmt.Fprintf(&buf, `{"id": %d, "name": "item-%d", "price": %d.5, "tags": ["a", "b"]}`, i, i, i%1000)
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

func benchDecode(b *testing.B, body []byte, compress bool, mode string) {
	ctx := context.Background()
	url := "memory://bench-decode-" + messaging.NewUUID()[:8]
	h, err := hub.New(hub.Options{})
	if err != nil {
		b.Fatal(err)
	}
	conn, _ := messaging.NewConnection(url, messaging.Options{Hub: h})
	pub, _ := messaging.NewConnection(url, messaging.Options{})
	hctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- h.Run(hctx) }()
	defer func() {
		conn.Close()
		stop()
		<-ran
		h.Close()
		pub.Close()
	}()
	var worst time.Duration
	var tick func(due time.Time)
	tick = func(due time.Time) {
		now := h.Now()
		worst = max(worst, now.Sub(due))
		next := now.Add(time.Millisecond)
		h.CallAt(next, func() { tick(next) })
	}
	h.Post(func() { tick(h.Now()) })

	// The lazy modes get the compression in a header the library does not
	// read, so that the handler decompresses as a lazy message would.
	compHeader := "compression"
	if mode != "pool" {
		compHeader = "x-lazy-compression"
	}
	wire := body
	if compress {
		if wire, _, err = compression.Default().Compress(body, "zlib"); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan struct{}, 1)
	finish := func(m *messaging.Message) {
		m.Ack()
		done <- struct{}{}
	}
	lazyDecode := func(m *messaging.Message) {
		data := m.Body
		if c, _ := m.Headers["x-lazy-compression"].(string); c != "" {
			if data, err = compression.Default().Decompress(data, c); err != nil {
				b.Error(err)
			}
		}
		if _, err := serializer.Default().Loads(data, m.ContentType, m.ContentEncoding, nil); err != nil {
			b.Error(err)
		}
		finish(m)
	}
	var wg sync.WaitGroup
	opts := messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "bd"}}}
	switch mode {
	case "pool":
		opts.Callbacks = []messaging.Callback{func(_ any, m *messaging.Message) { finish(m) }}
	case "lazy/hub":
		opts.OnMessage = lazyDecode
	case "lazy/handoff":
		opts.OnMessage = func(m *messaging.Message) {
			wg.Add(1)
			go func() { defer wg.Done(); lazyDecode(m) }()
		}
	}
	defer wg.Wait()
	cons, err := messaging.NewConsumer(conn, opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		b.Fatal(err)
	}
	ch, err := pub.DefaultChannel(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m := &transport.Message{Body: wire, ContentType: "application/json", ContentEncoding: "utf-8"}
	if compress {
		m.Headers = map[string]any{compHeader: compression.ContentTypeZlib}
	}
	send := func() {
		if err := ch.Publish(ctx, m, "", "bd", transport.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
		<-done
	}
	send() // warm
	if err := h.Call(ctx, func() { worst = 0 }); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	var w time.Duration
	h.Call(ctx, func() { w = worst })
	b.ReportMetric(float64(w)/float64(time.Millisecond), "hub-max-ms")
}
