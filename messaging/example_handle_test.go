package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// A consumer is the handle of its consuming: here the hub runs on a
// goroutine of its own, slow handlers run on a Workers pool, and Drain
// stops the deliveries and waits for the messages in flight to be
// settled. Done and Err then say that the consumer stopped, and why.
func ExampleConsumer_Drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := messaging.NewConnection("memory://example-drain", messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	jobs := messaging.NewQueue("jobs", messaging.NewExchange("jobs", messaging.Direct), "jobs")
	producer, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: jobs.Exchange, RoutingKey: "jobs"})
	if err != nil {
		panic(err)
	}
	for i := 1; i <= 3; i++ {
		if err := producer.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{jobs}}); err != nil {
			panic(err)
		}
	}

	workers := messaging.NewWorkers(messaging.WorkersOptions{N: 3})
	defer workers.Close()
	started := make(chan struct{}, 3)
	var mu sync.Mutex
	sum := int64(0)
	consumer, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        []messaging.Queue{jobs},
		PrefetchCount: workers.Capacity(),
		Callbacks: []messaging.Callback{workers.Callback(func(ctx context.Context, body any, m *messaging.Message) error {
			started <- struct{}{}
			time.Sleep(20 * time.Millisecond) // slow work, still running when Drain is called
			mu.Lock()
			defer mu.Unlock()
			sum += body.(int64)
			return nil // the pool acknowledges the message
		})},
	})
	if err != nil {
		panic(err)
	}
	if err := consumer.Consume(ctx); err != nil {
		panic(err)
	}
	h, err := conn.Hub()
	if err != nil {
		panic(err)
	}
	hubCtx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(hubCtx) }()
	defer func() { stopHub(); <-hubDone }()

	for range 3 {
		<-started
	}
	err = consumer.Drain(ctx) // waits for the three handlers and their acknowledgements
	mu.Lock()
	fmt.Println("drained:", err, "sum:", sum)
	mu.Unlock()
	<-consumer.Done()
	fmt.Println("stopped:", errors.Is(consumer.Err(), messaging.ErrStopped))
	// Output:
	// drained: <nil> sum: 6
	// stopped: true
}

// A ConsumerWorker shuts down gracefully on SIGTERM: Run stops consuming,
// waits (at most DrainTimeout) for the messages its callbacks handed to a
// Workers pool to be settled, closes its connection and returns. Nothing is
// lost: every message was either handled and acknowledged, or is still in
// the queue for the next worker.
func ExampleConsumerWorker() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	conn, err := messaging.NewConnection("memory://example-worker", messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	tasks := messaging.NewQueue("tasks", messaging.NewExchange("tasks", messaging.Direct), "tasks")
	producer, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: tasks.Exchange, RoutingKey: "tasks"})
	if err != nil {
		panic(err)
	}
	for i := range 10 {
		if err := producer.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{tasks}}); err != nil {
			panic(err)
		}
	}

	workers := messaging.NewWorkers(messaging.WorkersOptions{N: 2, Queue: 2})
	var mu sync.Mutex
	handled := 0
	worker, err := messaging.NewConsumerWorker(conn, messaging.ConsumerWorkerOptions{
		DrainTimeout: 5 * time.Second,
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{
				Queues:        []messaging.Queue{tasks},
				PrefetchCount: workers.Capacity(),
				Callbacks: []messaging.Callback{workers.Callback(func(ctx context.Context, body any, m *messaging.Message) error {
					time.Sleep(5 * time.Millisecond) // slow work
					mu.Lock()
					defer mu.Unlock()
					handled++
					if handled == 3 {
						// In a service the signal comes from outside (kill,
						// Kubernetes); here the example sends it itself.
						p, _ := os.FindProcess(os.Getpid())
						p.Signal(syscall.SIGTERM)
					}
					return nil
				})},
			}}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	err = worker.Run(ctx) // returns after the drain
	workers.Close()
	fmt.Println("shut down:", err)

	ch, err := conn.DefaultChannel(context.Background())
	if err != nil {
		panic(err)
	}
	info, err := tasks.DeclareQueue(context.Background(), ch, true)
	if err != nil {
		panic(err)
	}
	mu.Lock()
	fmt.Println("handled + still queued:", handled+info.Messages)
	mu.Unlock()
	// Output:
	// shut down: <nil>
	// handled + still queued: 10
}
