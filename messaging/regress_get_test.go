package messaging_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/messaging"
)

// Kombu's polling style: Queue.Get + Ack in a loop, no DrainEvents. Acked
// messages must not be retained.
func TestGetAckWithoutDriverSettles(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.NewQueue("getq", messaging.NewExchange("getq", messaging.Direct), "getq")
	ch, err := c.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "getq"})
	body := strings.Repeat("x", 4096)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 20000
	for i := 0; i < n; i++ {
		if err := p.Publish(ctx, body, messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		m, err := q.Get(ctx, ch, messaging.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d MB after %d Get+Ack of 4 KB messages", grown>>20, n)
	if grown > 20<<20 {
		t.Errorf("acked messages are retained: heap +%d MB", grown>>20)
	}
}
