package sqla

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestBenchVsPython measures, in one run on the same database and tables,
// publish (one by one) and consume (acknowledging each, prefetch 100)
// throughput of this transport and of Python Kombu's SQLAlchemy transport,
// and logs both with their ratio. It is a measurement, not a check: it
// runs only with KOMBU_SQLA_BENCH=N (messages per side, e.g. 2000).
func TestBenchVsPython(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KOMBU_SQLA_BENCH"))
	if n <= 0 {
		t.Skip("a measurement: set KOMBU_SQLA_BENCH=<messages> to run it")
	}
	const size = 64
	eachBackend(t, func(t *testing.T, raw string) {
		f := newFixture(t, raw, "bench-", nil)
		tr, ch, q := f.tr, f.ch, f.q
		ctx := context.Background()
		body, _ := json.Marshal(strings.Repeat("x", size))
		t0 := time.Now()
		for range n {
			m := &transport.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8"}
			if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		goPub := float64(n) / time.Since(t0).Seconds()
		if err := ch.Qos(ctx, 100); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		got := 0
		t0 = time.Now()
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			ch.Ack(m.DeliveryInfo.DeliveryTag)
			if got++; got == n {
				close(done)
			}
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			t.Fatalf("consumed %d of %d", got, n)
		}
		goCon := float64(n) / time.Since(t0).Seconds()

		opts, _ := json.Marshal(map[string]any{"queue_tablename": tr.o.QueueTable, "message_tablename": tr.o.MessageTable})
		pq := uniq("pybench-")
		out, err := exec.Command(python(t), "testdata/kombu_sqla_bench.py", pyURL(raw), string(opts), pq, fmt.Sprint(n), fmt.Sprint(size)).Output()
		if err != nil {
			t.Fatalf("python bench: %v", err)
		}
		var py struct {
			Pub float64 `json:"publish_per_s"`
			Con float64 `json:"consume_per_s"`
		}
		if err := json.Unmarshal(out, &py); err != nil {
			t.Fatalf("python bench output %q: %v", out, err)
		}
		t.Logf("%s, %d messages of %d bytes: publish Go %.0f/s, Python %.0f/s (x%.2f); consume+ack Go %.0f/s, Python %.0f/s (x%.2f)",
			tr.o.Dialect, n, size, goPub, py.Pub, goPub/py.Pub, goCon, py.Con, goCon/py.Con)
	})
}
