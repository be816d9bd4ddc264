package amqp

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/transport"
)

// benchBody is the anchors' message: {"i": n, "payload": 64 bytes}.
func benchBody(i int) []byte {
	return fmt.Appendf(nil, `{"i": %d, "payload": "%s"}`, i, strings.Repeat("x", 64))
}

// plainURL turns KOMBU_TEST_AMQP_URL into the URL amqp091 expects (its
// vhost is the path without the leading slash, percent-encoded).
func plainURL(tb testing.TB) string {
	cfg := configFromURL(tb, brokerURL(tb))
	port := cfg.Port
	if port == 0 {
		port = 5672
	}
	return fmt.Sprintf("amqp://%s:%s@%s:%d/%s", url.PathEscape(cfg.UserID), url.PathEscape(cfg.Password),
		cfg.Hostname, port, url.PathEscape(cfg.VirtualHost))
}

func plainDial(tb testing.TB) (*amqp091.Connection, *amqp091.Channel) {
	tb.Helper()
	c, err := amqp091.Dial(plainURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := c.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	return c, ch
}

// fill publishes n messages to q with amqp091 and waits until the broker
// holds them all.
func fill(tb testing.TB, ch *amqp091.Channel, q string, n int) {
	tb.Helper()
	for i := range n {
		if err := ch.Publish("", q, false, false, amqp091.Publishing{ContentType: "application/json",
			ContentEncoding: "utf-8", DeliveryMode: 2, Body: benchBody(i)}); err != nil {
			tb.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if info.Messages >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("queue holds %d of %d", info.Messages, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumeHub consumes n messages through the transport and the hub with
// prefetch 100, acking each in the callback, and returns the elapsed time.
func consumeHub(tb testing.TB, e *env, q string, n int) time.Duration {
	ch, err := e.conn.Channel(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Qos(context.Background(), 100); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	got := 0
	start := time.Now()
	tag, err := ch.Consume(context.Background(), transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		got++
		if got == n {
			close(done)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	<-done
	elapsed := time.Since(start)
	ch.Cancel(context.Background(), tag)
	return elapsed
}

// consumePlain does the same with a plain amqp091-go consumer: a goroutine
// ranging over the deliveries and acking each.
func consumePlain(tb testing.TB, q string, n int) time.Duration {
	c, ch := plainDial(tb)
	defer c.Close()
	if err := ch.Qos(100, 0, false); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	ds, err := ch.Consume(q, "plain-bench", false, false, false, false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	got := 0
	for d := range ds {
		d.Ack(false)
		got++
		if got == n {
			break
		}
	}
	elapsed := time.Since(start)
	ch.Cancel("plain-bench", false)
	return elapsed
}

// BenchmarkConsumeAck compares, in the same run, consume+ack with prefetch
// 100 through this transport and the hub against a plain amqp091-go
// consumer. Each iteration moves 20,000 messages through each; the metrics
// are msg/s for both and their ratio.
func BenchmarkConsumeAck(b *testing.B) {
	const n = 20000
	e := dial(b, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	pc, pch := plainDial(b)
	defer pc.Close()
	var hubT, plainT time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fill(b, pch, q, n)
		b.StartTimer()
		hubT += consumeHub(b, e, q, n)
		b.StopTimer()
		fill(b, pch, q, n)
		b.StartTimer()
		plainT += consumePlain(b, q, n)
	}
	hub := float64(n*b.N) / hubT.Seconds()
	plain := float64(n*b.N) / plainT.Seconds()
	b.ReportMetric(hub, "hub-msg/s")
	b.ReportMetric(plain, "amqp091-msg/s")
	b.ReportMetric(hub/plain, "hub/amqp091")
}

func benchPublish(b *testing.B, opts map[string]any) {
	e := dial(b, opts)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{"x-max-length": 10000}})
	m := &transport.Message{Body: benchBody(1), ContentType: "application/json", ContentEncoding: "utf-8"}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	// basic.qos on the same channel answers after the broker took every
	// publish before it: the rate counts what the broker absorbed.
	if err := ch.Qos(ctx, 0); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

func benchPublishPlain(b *testing.B, confirm bool) {
	c, ch := plainDial(b)
	defer c.Close()
	q, err := ch.QueueDeclare("", false, true, true, false, amqp091.Table{"x-max-length": int64(10000)})
	if err != nil {
		b.Fatal(err)
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
	}
	p := amqp091.Publishing{Body: benchBody(1), ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		dc, err := ch.PublishWithDeferredConfirm("", q.Name, false, false, p)
		if err != nil {
			b.Fatal(err)
		}
		if confirm && !dc.Wait() {
			b.Fatal("nack")
		}
	}
	if err := ch.Qos(0, 0, false); err != nil { // barrier, as above
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkPublish publishes one message at a time (each waits for the
// executor; with confirms, for the broker's ack) through the transport and
// with plain amqp091-go.
func BenchmarkPublish(b *testing.B) {
	b.Run("transport", func(b *testing.B) { benchPublish(b, nil) })
	b.Run("transport-confirm", func(b *testing.B) { benchPublish(b, map[string]any{"confirm_publish": true}) })
	b.Run("amqp091", func(b *testing.B) { benchPublishPlain(b, false) })
	b.Run("amqp091-confirm", func(b *testing.B) { benchPublishPlain(b, true) })
}

// BenchmarkPublishParallel runs confirmed publishers on several goroutines
// over one channel: the confirms are awaited outside the executor, so they
// overlap.
func BenchmarkPublishParallel(b *testing.B) {
	e := dial(b, map[string]any{"confirm_publish": true})
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{"x-max-length": 10000}})
	m := &transport.Message{Body: benchBody(1), ContentType: "application/json", ContentEncoding: "utf-8"}
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := ch.Publish(context.Background(), m, "", q, transport.PublishOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkPublishVsAmqp091 interleaves, in each iteration, 20,000
// unconfirmed publishes through the transport and 20,000 with plain
// amqp091-go on the same machine state; the metrics are msg/s for both
// (until the broker took them) and the ratio.
func BenchmarkPublishVsAmqp091(b *testing.B) {
	const n = 20000
	e := dial(b, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{"x-max-length": 10000}})
	pc, pch := plainDial(b)
	defer pc.Close()
	m := &transport.Message{Body: benchBody(1), ContentType: "application/json", ContentEncoding: "utf-8"}
	p := amqp091.Publishing{Body: benchBody(1), ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2}
	ctx := context.Background()
	var tT, pT time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for range n {
			if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := ch.Qos(ctx, 0); err != nil {
			b.Fatal(err)
		}
		tT += time.Since(start)
		start = time.Now()
		for range n {
			if err := pch.Publish("", q, false, false, p); err != nil {
				b.Fatal(err)
			}
		}
		if err := pch.Qos(0, 0, false); err != nil {
			b.Fatal(err)
		}
		pT += time.Since(start)
	}
	tr := float64(n*b.N) / tT.Seconds()
	pl := float64(n*b.N) / pT.Seconds()
	b.ReportMetric(tr, "transport-msg/s")
	b.ReportMetric(pl, "amqp091-msg/s")
	b.ReportMetric(tr/pl, "transport/amqp091")
}
