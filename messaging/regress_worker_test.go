package messaging_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// A ConsumerWorker whose connection is briefly driven by another goroutine
// (here: closing a channel of that connection, which uses hub.Call) must go
// on consuming afterwards.
func TestWorkerSurvivesTransientErrRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "memory://review-w-" + messaging.NewUUID()[:8]
	tmpl, _ := messaging.NewConnection(url, messaging.Options{})
	defer tmpl.Close()
	q := messaging.NewQueue("wq", messaging.NewExchange("wq", messaging.Direct), "wq")
	var got atomic.Int64
	ready := make(chan *messaging.Connection, 1)
	w, err := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		SafetyInterval: 50 * time.Millisecond,
		Consumers: func(conn *messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{q},
				Callbacks: []messaging.Callback{func(_ any, m *messaging.Message) { got.Add(1); m.Ack() }}}}, nil
		},
		OnConsumeReady: func(conn *messaging.Connection, _ []*messaging.Consumer) { ready <- conn },
		OnIteration:    func() { time.Sleep(200 * time.Microsecond) }, // some per-iteration work
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(ctx) }()
	defer wg.Wait()
	defer w.Stop()
	conn := <-ready
	// Another goroutine uses the worker's connection: open and close channels.
	for i := 0; i < 2000; i++ {
		ch, err := conn.Channel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ch.Close()
	}
	pubc, _ := messaging.NewConnection(url, messaging.Options{})
	defer pubc.Close()
	p, _ := messaging.NewProducer(pubc, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "wq"})
	for i := 0; i < 10; i++ {
		if err := p.Publish(ctx, i, messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for got.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() < 10 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "ConsumerWorker") {
				t.Log(g)
			}
		}
		t.Fatalf("worker delivered %d of 10 messages within 3s: it is stuck", got.Load())
	}
}
