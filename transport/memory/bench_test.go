package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/memory"
)

// benchEnv is a memory connection on a hub run by a goroutine of its own.
type benchEnv struct {
	h    *hub.Hub
	conn transport.Conn
	stop func()
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	tr, err := memory.New(transport.Config{Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{h: h, conn: conn}
	e.stop = func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			b.Error(err)
		}
		h.Close()
	}
	b.Cleanup(e.stop)
	return e
}

func (e *benchEnv) channel(b *testing.B) transport.Channel {
	ch, err := e.conn.Channel(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

var body64 = []byte(`{"i": 1, "payload": "0123456789012345678901234567890123456789"}`)

func benchQueue(b *testing.B, ch transport.Channel) string {
	name := "bench-" + b.Name()
	if _, err := ch.DeclareQueue(context.Background(), transport.Queue{Name: name}); err != nil {
		b.Fatal(err)
	}
	ch.PurgeQueue(context.Background(), name)
	b.Cleanup(func() { ch.DeleteQueue(context.Background(), name, false, false) })
	return name
}

func report(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPublish publishes to the default exchange from one goroutine.
func BenchmarkPublish(b *testing.B) {
	e := newBenchEnv(b)
	ch := e.channel(b)
	q := benchQueue(b, ch)
	m := &transport.Message{Body: body64, ContentType: "application/json"}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(body64)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
		if i&0xffff == 0xffff {
			ch.PurgeQueue(ctx, q) // keep the queue (and the heap) at a steady size
		}
	}
	b.StopTimer()
	report(b)
}

// BenchmarkPublishDirect publishes through a direct exchange (binding
// table lookup).
func BenchmarkPublishDirect(b *testing.B) {
	e := newBenchEnv(b)
	ch := e.channel(b)
	q := benchQueue(b, ch)
	ctx := context.Background()
	x := "bench-x-" + b.Name()
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: x, Type: transport.Direct}); err != nil {
		b.Fatal(err)
	}
	if err := ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: x, RoutingKey: "rk"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ch.DeleteExchange(ctx, x, false) })
	m := &transport.Message{Body: body64, ContentType: "application/json"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ch.Publish(ctx, m, x, "rk", transport.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
		if i&0xffff == 0xffff {
			ch.PurgeQueue(ctx, q)
		}
	}
	b.StopTimer()
	report(b)
}

func fill(b *testing.B, ch transport.Channel, q string, n int) {
	m := &transport.Message{Body: body64, ContentType: "application/json"}
	for i := 0; i < n; i++ {
		if err := ch.Publish(context.Background(), m, "", q, transport.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsumeAck drains b.N queued messages through the hub with a
// prefetch window of 100; the callback acks on the hub goroutine.
func BenchmarkConsumeAck(b *testing.B) {
	e := newBenchEnv(b)
	ch := e.channel(b)
	q := benchQueue(b, ch)
	fill(b, ch, q, b.N)
	ctx := context.Background()
	if err := ch.Qos(ctx, 100); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		if n++; n == b.N {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	report(b)
	ch.Close()
}

// BenchmarkConsumeAckWorker is BenchmarkConsumeAck with the acks made by
// a worker goroutine, as a consumer that hands messages off does.
func BenchmarkConsumeAckWorker(b *testing.B) {
	e := newBenchEnv(b)
	ch := e.channel(b)
	q := benchQueue(b, ch)
	fill(b, ch, q, b.N)
	ctx := context.Background()
	if err := ch.Qos(ctx, 100); err != nil {
		b.Fatal(err)
	}
	work := make(chan string, 128)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < b.N; i++ {
			ch.Ack(<-work)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		work <- m.DeliveryInfo.DeliveryTag // never blocks: at most 100 unacked
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	report(b)
	ch.Close()
}

// BenchmarkPublishConsumeAck runs a publisher goroutine against a consumer
// that acks on the hub: the whole pipeline, messages per second end to end.
func BenchmarkPublishConsumeAck(b *testing.B) {
	e := newBenchEnv(b)
	ch := e.channel(b)
	pub := e.channel(b)
	q := benchQueue(b, ch)
	ctx := context.Background()
	if err := ch.Qos(ctx, 100); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	n := 0
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		if n++; n == b.N {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	fill(b, pub, q, b.N)
	<-done
	b.StopTimer()
	report(b)
	ch.Close()
	pub.Close()
}
