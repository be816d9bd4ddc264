package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// A message that cannot be serialized stops the batch there: the messages
// before it are stored, none after it, and the error is the serializer's,
// not a connection error (so Retry does not publish the prefix again).
// Redis serializes each message as its pipeline reaches it; AMQP publishes
// one at a time.
func TestPublishBatchStopsAtABadMessage(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string, conn *messaging.Connection) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := messaging.Queue{Name: "batch-bad-" + messaging.NewUUID()[:8]}
		ch, err := conn.DefaultChannel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Declare(ctx, ch); err != nil {
			t.Fatal(err)
		}
		defer q.Delete(context.Background(), ch, messaging.DeleteOptions{})
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
		var got []any
		for {
			m, err := q.Get(ctx, ch, messaging.GetOptions{NoAck: true})
			if errors.Is(err, messaging.ErrEmpty) || errors.Is(err, transport.ErrEmpty) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := m.Decode()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		// Two batches, each stored 0..5 in order.
		if len(got) != 12 {
			t.Fatalf("stored %d messages %v, want 0..5 twice", len(got), got)
		}
		for i, v := range got {
			if n, ok := v.(int64); !ok || int(n) != i%6 {
				t.Fatalf("message %d is %v (%T), want %d: %v", i, v, v, i%6, got)
			}
		}
	})
}
