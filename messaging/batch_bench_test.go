package messaging_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// batchBodies is kombu bench --batch's publish: batches of 100 JSON maps
// {"i": n, "payload": 64 bytes} to one queue through the default exchange.
func batchBodies(queue string) []messaging.BatchMessage {
	payload := strings.Repeat("x", 64)
	msgs := make([]messaging.BatchMessage, 100)
	for i := range msgs {
		msgs[i] = messaging.BatchMessage{Body: map[string]any{"i": i, "payload": payload},
			Options: messaging.PublishOptions{RoutingKey: queue}}
	}
	return msgs
}

// BenchmarkPublishBatchRedis is Producer.PublishBatch on Redis, as kombu
// bench --batch 100 runs it (the ratio to a go-redis pipeline is measured
// there, in interleaved rounds).
func BenchmarkPublishBatchRedis(b *testing.B) {
	url := transporttest.BrokerURL(b, "KOMBU_TEST_REDIS_URL")
	conn, err := messaging.NewConnection(url, brokerOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	q := messaging.Queue{Name: "bench-batch-" + messaging.NewUUID()[:8]}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Delete(context.Background(), ch, messaging.DeleteOptions{})
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		b.Fatal(err)
	}
	msgs := batchBodies(q.Name)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += len(msgs) {
		if err := p.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
			b.Fatal(err)
		}
		if sent%100000 == 0 {
			b.StopTimer()
			_, _ = q.Purge(ctx, ch)
			b.StartTimer()
		}
	}
}

// BenchmarkPrepare is the producer's per-message work before the
// transport: serialization, headers and properties.
func BenchmarkPrepare(b *testing.B) {
	conn, err := messaging.NewConnection("memory://bench-prepare", messaging.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		b.Fatal(err)
	}
	msgs := batchBodies("q")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bm := msgs[i%len(msgs)]
		if _, _, _, err := p.Prepare(bm.Body, bm.Options); err != nil {
			b.Fatal(err)
		}
	}
}
