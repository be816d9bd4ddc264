package sqs

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestBenchAgainstPython measures, in one run against the same emulator,
// Go's and Python Kombu's publish (one by one) and consume (prefetch 100,
// with acknowledgements) rates of N JSON messages of 64 payload bytes, and
// logs the ratios. It runs only with KOMBU_SQS_BENCH=1 (N from
// KOMBU_SQS_BENCH_N, default 2000): it is a measurement, not a check.
func TestBenchAgainstPython(t *testing.T) {
	if os.Getenv("KOMBU_SQS_BENCH") != "1" {
		t.Skip("a measurement: set KOMBU_SQS_BENCH=1 to run it")
	}
	n := 2000
	if s := os.Getenv("KOMBU_SQS_BENCH_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	const size, prefetch = 64, 100
	e := newEnv(t, map[string]any{"wait_time_seconds": 1, "polling_interval": 0.1})
	body := []byte(`{"data": "` + strings.Repeat("x", size) + `"}`)

	const q = "bench.go"
	ch := e.channel(nil, q)
	start := time.Now()
	for range n {
		if err := ch.Publish(e.ctx, &transport.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8"},
			"", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	goPub := float64(n) / time.Since(start).Seconds()
	ch.Qos(e.ctx, prefetch)
	col := newCollector()
	var first time.Time
	if _, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		if first.IsZero() {
			first = time.Now()
		}
		col.fn(m)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}
	col.wait(t, n, 5*time.Minute)
	var goCons float64
	e.h.Call(e.ctx, func() { goCons = float64(n-1) / time.Since(first).Seconds() })

	const pq = "bench.py"
	e.channel(nil, pq) // deleted at the end
	var py struct{ Publish, Consume float64 }
	out := e.peerScript("testdata/kombu_sqs_bench.py", pq, fmt.Sprint(n), fmt.Sprint(size), fmt.Sprint(prefetch))
	if err := json.Unmarshal([]byte(out), &py); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	t.Logf("%d messages of %d bytes, prefetch %d, goaws on 127.0.0.1:", n, size, prefetch)
	t.Logf("publish  Go %7.0f msg/s  Python Kombu %7.0f msg/s  ratio %.2f", goPub, py.Publish, goPub/py.Publish)
	t.Logf("consume  Go %7.0f msg/s  Python Kombu %7.0f msg/s  ratio %.2f", goCons, py.Consume, goCons/py.Consume)
}
