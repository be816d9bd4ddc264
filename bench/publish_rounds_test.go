package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// BenchmarkPublishBatchRatio is kombu bench --batch 100's comparison as a
// benchmark (issue 12's bar: at least 0.8): Producer.PublishBatch of map
// bodies built in the loop against a plain go-redis pipeline of envelopes
// encoded beforehand, over comparePublish's alternating rounds of b.N
// messages a side. It reports the ratio (x-ready) and the naive pipeline's
// (x-naive), and both rates. On a busy 2-core machine the ratio of one
// run varies by ±0.15: compare runs with -count.
func BenchmarkPublishBatchRatio(b *testing.B) {
	url := transporttest.BrokerURL(b, "KOMBU_TEST_REDIS_URL")
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	n := max(b.N, publishRounds*100)
	b.ResetTimer()
	cmp, err := comparePublish(ctx, url, prod, randomName()+"-ratio", n, 100, strings.Repeat("x", 64))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(cmp.Batched/cmp.Ready, "x-ready")
	b.ReportMetric(cmp.Batched/cmp.Naive, "x-naive")
	b.ReportMetric(cmp.Batched, "batch-msg/s")
	b.ReportMetric(cmp.Ready, "ready-msg/s")
}
