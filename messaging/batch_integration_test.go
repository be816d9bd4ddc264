package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// A message that cannot be serialized fails the whole batch before any of
// it is published, and the error is the serializer's, not a connection
// error (so Retry does not try again). (Serializing each message as the
// Redis pipeline reaches it was tried on 2026-12-02 and measured no faster:
// kombu bench --batch 100, 0.49-0.61x against 0.56-0.65x.)
func TestPublishBatchRefusesABadMessage(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string, conn *messaging.Connection) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, ch, del := scratchQueue(t, ctx, conn, "batch-bad-")
		defer del()
		p, err := messaging.NewProducer(conn, messaging.ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []messaging.BatchMessage
		for i := 0; i < 10; i++ {
			o := messaging.PublishOptions{RoutingKey: q.Name}
			if i == 6 {
				o.Serializer = "nope"
			}
			msgs = append(msgs, messaging.BatchMessage{Body: i, Options: o})
		}
		for _, retry := range []bool{false, true} {
			err = p.PublishBatch(ctx, msgs, messaging.BatchOptions{Retry: retry, RetryPolicy: messaging.RetryPolicy{MaxRetries: 2}})
			var be *transport.BrokerError
			if !errors.Is(err, messaging.ErrNotInstalled) || errors.As(err, &be) {
				t.Fatalf("retry=%v: err = %v, want the serializer's ErrNotInstalled and no broker error", retry, err)
			}
		}
		if m, err := q.Get(ctx, ch, messaging.GetOptions{NoAck: true}); !errors.Is(err, messaging.ErrEmpty) && !errors.Is(err, transport.ErrEmpty) {
			t.Fatalf("the failed batch stored a message: %v, %v", m, err)
		}
	})
}

// A batch larger than the Redis transport's write and reply windows
// (64 KiB of commands, 4,096 replies outstanding) is stored whole and in
// order; the next batch on the same connection reports its own error
// reply (a key of the wrong type), not one of the first batch's replies,
// and the one after it succeeds.
func TestPublishBatchLarge(t *testing.T) {
	url := brokerURL(t, "KOMBU_TEST_REDIS_URL")
	conn, err := messaging.NewConnection(url, brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := messaging.Queue{Name: "batch-large-" + messaging.NewUUID()[:8]}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Delete(context.Background(), ch, messaging.DeleteOptions{})
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{RoutingKey: q.Name})
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	msgs := make([]messaging.BatchMessage, n)
	for i := range msgs {
		msgs[i] = messaging.BatchMessage{Body: map[string]any{"i": i, "pad": strings.Repeat("p", i%300)}}
	}
	if err := p.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
		t.Fatal(err)
	}
	wrong := q.Name + "-string"
	if err := redisDo(ctx, url, "SET", wrong, "not a list"); err != nil {
		t.Fatal(err)
	}
	defer redisDo(context.Background(), url, "DEL", wrong)
	bad := []messaging.BatchMessage{{Body: "x", Options: messaging.PublishOptions{RoutingKey: wrong}}}
	if err := p.PublishBatch(ctx, bad, messaging.BatchOptions{}); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("batch to a string key: %v, want WRONGTYPE", err)
	}
	last := []messaging.BatchMessage{{Body: map[string]any{"i": n}}}
	if err := p.PublishBatch(ctx, last, messaging.BatchOptions{}); err != nil {
		t.Fatalf("the batch after the failed one: %v", err)
	}
	for i := 0; i <= n; i++ {
		m, err := q.Get(ctx, ch, messaging.GetOptions{NoAck: true})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		body, err := m.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(body.(map[string]any)["i"]); got != strconv.Itoa(i) {
			t.Fatalf("message %d is %v", i, got)
		}
	}
	if _, err := q.Get(ctx, ch, messaging.GetOptions{NoAck: true}); !errors.Is(err, messaging.ErrEmpty) && !errors.Is(err, transport.ErrEmpty) {
		t.Fatalf("more than %d messages: %v", n+1, err)
	}
}

// The bodies of a batch are serialized into one buffer that the next
// batch reuses: on Redis each must be encoded from its own bytes before
// PublishBatch returns; through Publish (the memory transport, which also
// copies what it stores) each gets a copy first; a mandatory message and
// a compressed one are not in the buffer. Several batches go out before
// anything is read back, and every body must decode to what was sent.
func TestPublishBatchBodiesOutliveTheBatch(t *testing.T) {
	run := func(t *testing.T, conn *messaging.Connection) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, ch, del := scratchQueue(t, ctx, conn, "batch-bodies-")
		defer del()
		p, err := messaging.NewProducer(conn, messaging.ProducerOptions{RoutingKey: q.Name})
		if err != nil {
			t.Fatal(err)
		}
		const batches, per = 4, 20
		for b := 0; b < batches; b++ {
			msgs := make([]messaging.BatchMessage, per)
			for i := range msgs {
				n := b*per + i
				msgs[i] = messaging.BatchMessage{Body: map[string]any{"n": n, "pad": strings.Repeat("p", n)}}
				switch i {
				case 3:
					msgs[i].Options.Mandatory = true
				case 5:
					msgs[i].Options.Compression = "zlib"
				}
			}
			if err := p.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[int]bool{}
		for range batches * per {
			m, err := q.Get(ctx, ch, messaging.GetOptions{NoAck: true})
			if err != nil {
				t.Fatalf("after %d messages: %v", len(seen), err)
			}
			var v struct {
				N   int
				Pad string
			}
			if err := m.DecodeInto(&v); err != nil || v.Pad != strings.Repeat("p", v.N) || seen[v.N] {
				t.Fatalf("body %q: %+v, %v (seen before: %v)", m.Body, v, err, seen[v.N])
			}
			seen[v.N] = true
		}
	}
	t.Run("memory", func(t *testing.T) {
		conn, err := messaging.NewConnection("memory://batch-bodies", messaging.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		run(t, conn)
	})
	t.Run("redis", func(t *testing.T) {
		conn, err := messaging.NewConnection(brokerURL(t, "KOMBU_TEST_REDIS_URL"), brokerOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		run(t, conn)
	})
}

// scratchQueue declares a queue named prefix and a random suffix on the
// connection's default channel; del deletes it (before the connection
// closes).
func scratchQueue(t *testing.T, ctx context.Context, conn *messaging.Connection, prefix string) (q messaging.Queue, ch transport.Channel, del func()) {
	t.Helper()
	q = messaging.Queue{Name: prefix + messaging.NewUUID()[:8]}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	return q, ch, func() { q.Delete(context.Background(), ch, messaging.DeleteOptions{}) }
}
