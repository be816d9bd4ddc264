package sqla

import (
	"context"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// insertRaw stores a message the way a Python producer does: a plain
// INSERT from another connection, with no wake-up of our own.
func insertRaw(t *testing.T, c *Conn, queue string, m *transport.Message) {
	t.Helper()
	ctx := context.Background()
	qid, err := c.db.queueID(ctx, queue, true)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := encodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.db.put(ctx, qid, payload); err != nil {
		t.Fatal(err)
	}
}

// TestListenWakesConsumer: on PostgreSQL an idle consumer whose polls are
// 30 s apart gets a message another process inserted within a second: the
// trigger's NOTIFY woke it. With listen=false the same consumer waits for
// its poll.
func TestListenWakesConsumer(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		for _, listen := range []bool{true, false} {
			tr := newTransport(t, raw, map[string]any{"polling_interval": 30, "listen_polling_interval": 30, "listen": listen,
				"visibility_timeout": 0})
			h := runHub(t)
			c, ch := dial(t, tr, h)
			other, _ := dial(t, tr, h) // the "Python producer": no local wake-up reaches ch
			q := uniq("listen-")
			got := collect(t, ch, q, true)
			// Let the first (empty) claim finish and the LISTEN connection
			// come up.
			deadline := time.Now().Add(5 * time.Second)
			for (!c.listening.Load() && listen && tr.o.Dialect == PostgreSQL) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			insertRaw(t, other, q, jsonMsg("hello"))
			woke := tr.o.Dialect == PostgreSQL && listen
			select {
			case <-got:
				if !woke {
					t.Fatalf("listen=%v on %s: delivered before the 30 s poll: nothing should have woken the consumer", listen, tr.o.Dialect)
				}
			case <-time.After(2 * time.Second):
				if woke {
					t.Fatal("no delivery within 2 s: the notification did not wake the consumer")
				}
			}
		}
	})
}
