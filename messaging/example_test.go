package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
)

// The Kombu quickstart: a direct exchange "media", a queue "video" bound to
// it with the routing key "video", a JSON message published to it, and a
// consumer that prints the body and acknowledges it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	conn, err := messaging.NewConnection("memory://quickstart", messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	media := messaging.NewExchange("media", messaging.Direct)
	video := messaging.NewQueue("video", media, "video")

	producer, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: media, Serializer: "json"})
	if err != nil {
		panic(err)
	}
	err = producer.Publish(ctx, map[string]any{"name": "/tmp/lolcat1.avi", "size": 1301013},
		messaging.PublishOptions{RoutingKey: "video", Declare: []messaging.Declaration{video}})
	if err != nil {
		panic(err)
	}

	consumer, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues: []messaging.Queue{video},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			fmt.Println(body)
			m.Ack()
		}},
	})
	if err != nil {
		panic(err)
	}
	if err := consumer.Consume(ctx); err != nil {
		panic(err)
	}
	if err := conn.DrainEvents(ctx); err != nil {
		panic(err)
	}
	// Output:
	// map[name:/tmp/lolcat1.avi size:1301013]
}

// SimpleQueue: Kombu's simple interface, a queue used like a Go channel.
func ExampleSimpleQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := messaging.NewConnection("memory://example-simple", messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	queue, err := messaging.NewSimpleQueue(ctx, conn, "simple_queue", messaging.SimpleQueueOptions{})
	if err != nil {
		panic(err)
	}
	defer queue.Close()

	if err := queue.Put(ctx, map[string]any{"hello": "world"}, messaging.PublishOptions{}); err != nil {
		panic(err)
	}
	m, err := queue.Get(ctx)
	if err != nil {
		panic(err)
	}
	body, _ := m.Decode()
	fmt.Println("received:", body)
	m.Ack()

	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	_, err = queue.Get(short)
	fmt.Println("empty:", errors.Is(err, messaging.ErrEmpty))
	// Output:
	// received: map[hello:world]
	// empty: true
}

// Workers: handlers that block run on a bounded pool of goroutines, not on
// the hub; they settle messages from there (a nil return acknowledges).
func ExampleWorkers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := messaging.NewConnection("memory://example-workers", messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	tasks := messaging.NewQueue("tasks", messaging.NewExchange("tasks", messaging.Direct), "tasks")
	producer, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: tasks.Exchange, RoutingKey: "tasks"})
	if err != nil {
		panic(err)
	}
	for i := 1; i <= 3; i++ {
		if err := producer.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{tasks}}); err != nil {
			panic(err)
		}
	}

	workers := messaging.NewWorkers(messaging.WorkersOptions{N: 2, Queue: 4})
	var mu sync.Mutex
	sum, done := int64(0), 0
	consumer, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        []messaging.Queue{tasks},
		PrefetchCount: 6, // at most N+Queue in flight: the pool never overflows
		Callbacks: []messaging.Callback{workers.Callback(func(ctx context.Context, body any, m *messaging.Message) error {
			time.Sleep(time.Millisecond) // blocking work is fine here
			mu.Lock()
			defer mu.Unlock()
			sum += body.(int64)
			done++
			return nil
		})},
	})
	if err != nil {
		panic(err)
	}
	if err := consumer.Consume(ctx); err != nil {
		panic(err)
	}
	finished := func() bool { mu.Lock(); defer mu.Unlock(); return done == 3 }
	for !finished() {
		// Run the hub: deliveries arrive, and the workers' acks reach the
		// broker.
		tick, cancelTick := context.WithTimeout(ctx, 5*time.Millisecond)
		err := conn.DrainEvents(tick)
		cancelTick()
		if err != nil && !errors.Is(err, messaging.ErrTimeout) {
			panic(err)
		}
	}
	// Stop the consumer first (it waits for the messages it handed to the
	// pool), then the pool.
	consumer.Drain(ctx)
	workers.Close()
	fmt.Println("sum:", sum)
	// Output:
	// sum: 6
}

// A timer beside a consumer on a hub the application drives: a hub timer
// publishes a tick every 10 ms and the consumer prints them. Both callbacks
// run on the goroutine that calls Run, one at a time, so they share the
// counters without locks. Publishing from a hub callback suits the memory
// transport, which never blocks; with a network transport, publish from
// another goroutine instead.
func Example_timerBesideConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	h, err := hub.New(hub.Options{})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	conn, err := messaging.NewConnection("memory://example-timer", messaging.Options{Hub: h})
	if err != nil {
		panic(err)
	}
	defer conn.Close() // before h.Close: deferred calls run last first

	ticks := messaging.NewQueue("ticks", messaging.NewExchange("ticks", messaging.Direct), "tick")
	producer, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: ticks.Exchange, RoutingKey: "tick"})
	if err != nil {
		panic(err)
	}
	received := 0
	consumer, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues: []messaging.Queue{ticks},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			fmt.Println("consumed", body)
			m.Ack()
			if received++; received == 3 {
				h.Stop()
			}
		}},
	})
	if err != nil {
		panic(err)
	}
	if err := consumer.Consume(ctx); err != nil {
		panic(err)
	}

	sent := 0
	timer := h.CallRepeatedly(10*time.Millisecond, func() {
		if sent == 3 {
			return
		}
		sent++
		err := producer.Publish(ctx, fmt.Sprintf("tick %d", sent),
			messaging.PublishOptions{Declare: []messaging.Declaration{ticks}})
		if err != nil {
			fmt.Println(err)
		}
	})
	defer timer.Cancel()

	if err := h.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// consumed tick 1
	// consumed tick 2
	// consumed tick 3
}
