// Command worker is a Celery worker written in Go: it serves the tasks
// tasks.add, tasks.echo, tasks.fail, tasks.sleep and tasks.retry_once to
// any Celery client (Python's send_task, or examples/celery/client), and
// shuts down gracefully on SIGTERM or Ctrl-C: running tasks finish first.
//
//	go run ./examples/celery/worker --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/0
//	go run ./examples/celery/worker --broker amqp://guest:guest@127.0.0.1:5672// --backend rpc:// -E
//
// With -E it sends task events (celery events --dump shows them); it
// always answers remote control (celery inspect ping).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kombu-go/kombu/celery"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run parses the flags and runs the worker until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "redis://127.0.0.1:6379/0", "broker URL (redis://, amqp://, memory://)")
	backend := fs.String("backend", "", "result backend URL (redis://..., rpc://); empty: none")
	queue := fs.String("queue", celery.DefaultQueue, "queue to consume")
	concurrency := fs.Int("concurrency", 0, "handler goroutines (default GOMAXPROCS)")
	hostname := fs.String("hostname", "", "node name (default celery@<host>)")
	events := fs.Bool("E", false, "send task events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	w, err := celery.NewWorker(celery.WorkerOptions{Broker: *broker, Backend: *backend, Queues: []string{*queue},
		Concurrency: *concurrency, Hostname: *hostname, SendEvents: *events, RemoteControl: true, Logger: log})
	if err != nil {
		return err
	}
	defer w.Close()
	register(w)
	log.Info("worker ready", "hostname", w.Hostname(), "broker", *broker, "queue", *queue)
	return w.Run(ctx) // on SIGTERM: stops consuming, finishes the running tasks, sends worker-offline
}

// register adds the example tasks.
func register(w *celery.Worker) {
	// tasks.add: the sum of the arguments.
	w.Register("tasks.add", func(_ context.Context, args []any, _ map[string]any) (any, error) {
		var sum float64
		integral := true
		for _, a := range args {
			n, ok := celery.Number(a)
			if !ok {
				return nil, &celery.TaskError{Type: "TypeError", Message: fmt.Sprintf("cannot add %T", a)}
			}
			_, isInt := a.(int64)
			sum, integral = sum+n, integral && isInt
		}
		if integral {
			return int64(sum), nil
		}
		return sum, nil
	}, celery.TaskOptions{})
	// tasks.echo: its arguments back.
	w.Register("tasks.echo", func(_ context.Context, args []any, kwargs map[string]any) (any, error) {
		return map[string]any{"args": args, "kwargs": kwargs}, nil
	}, celery.TaskOptions{})
	// tasks.fail: a ValueError with a traceback, as a Python task raising it.
	w.Register("tasks.fail", func(ctx context.Context, args []any, _ map[string]any) (any, error) {
		msg := "boom"
		if len(args) > 0 {
			msg = fmt.Sprint(args[0])
		}
		t, _ := celery.TaskFromContext(ctx)
		return nil, &celery.TaskError{Type: "ValueError", Module: "builtins", Message: msg,
			Traceback: fmt.Sprintf("Traceback (most recent call last):\n  File \"examples/celery/worker/main.go\", "+
				"in tasks.fail\n    task %s\nValueError: %s\n", t.ID, msg)}
	}, celery.TaskOptions{})
	// tasks.sleep(seconds): sleeps, then returns its argument.
	w.Register("tasks.sleep", func(ctx context.Context, args []any, _ map[string]any) (any, error) {
		d, ok := time.Duration(0), len(args) == 1
		if ok {
			d, ok = celery.Seconds(args[0])
		}
		if !ok {
			return nil, &celery.TaskError{Type: "TypeError", Message: "tasks.sleep takes one argument, the seconds"}
		}
		select {
		case <-time.After(d):
			return args[0], nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, celery.TaskOptions{})
	// tasks.retry_once(countdown=1): retried once, then "retried 1".
	w.Register("tasks.retry_once", func(ctx context.Context, _ []any, kwargs map[string]any) (any, error) {
		t, _ := celery.TaskFromContext(ctx)
		if t.Retries == 0 {
			countdown, ok := celery.Seconds(kwargs["countdown"])
			if !ok {
				countdown = time.Second
			}
			return nil, celery.RetryAfter(countdown, errors.New("first attempt"))
		}
		return fmt.Sprintf("retried %d", t.Retries), nil
	}, celery.TaskOptions{})
}
