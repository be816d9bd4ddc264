package celery_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kombu-go/kombu/celery"
)

// A Go worker serves tasks.add, and a Go client calls it and reads the
// result through the RPC backend, all on the in-process memory broker
// (use redis:// or amqp:// URLs to meet Python Celery).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const broker = "memory://celery-example"

	w, err := celery.NewWorker(celery.WorkerOptions{Broker: broker, Backend: "rpc://", Concurrency: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	w.Register("tasks.add", func(_ context.Context, args []any, _ map[string]any) (any, error) {
		var sum float64
		for _, a := range args {
			n, ok := celery.Number(a)
			if !ok {
				return nil, &celery.TaskError{Type: "TypeError", Message: fmt.Sprintf("cannot add %v", a)}
			}
			sum += n
		}
		return sum, nil
	}, celery.TaskOptions{})
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }() // in a program: ctx from signal.NotifyContext
	defer func() { stop(); <-done }()

	client, err := celery.NewClient(celery.ClientOptions{Broker: broker, Backend: "rpc://"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	r, err := client.SendTask(ctx, "tasks.add", []any{2, 3.5}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	sum, err := r.Get(ctx)
	fmt.Println(sum, err)

	r, _ = client.SendTask(ctx, "tasks.add", []any{2, "x"}, nil)
	_, err = r.Get(ctx)
	var te *celery.TaskError
	fmt.Println(errors.As(err, &te), te.Type, te.Message)
	// Output:
	// 5.5 <nil>
	// true TypeError cannot add x
}
