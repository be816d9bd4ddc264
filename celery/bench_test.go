package celery_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
)

// BenchmarkRoundTripMemory: one task sent, run by the Go worker and its
// result read, on the in-process memory broker (the package's own cost,
// without a broker's round trips). Reports p50_us beside ns/op.
func BenchmarkRoundTripMemory(b *testing.B) {
	url := "memory://celery-bench-" + messaging.NewUUID()[:8]
	be := newMemBackend()
	startWorker(b, celery.WorkerOptions{Broker: url, ResultBackend: be, Concurrency: 2}, new(atomic.Int32))
	ctx := context.Background()
	client, err := celery.NewClient(celery.ClientOptions{Broker: url, ResultBackend: be})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		r, err := client.SendTask(ctx, "tasks.add", []any{i, i}, nil)
		if err == nil {
			_, err = r.Get(ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_us")
}
