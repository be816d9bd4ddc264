// Command client calls a Celery task by name and prints its result as
// JSON: the task may run on a Python Celery worker or on
// examples/celery/worker.
//
//	go run ./examples/celery/client --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/0 tasks.add '[2, 3]'
//	go run ./examples/celery/client --broker amqp://guest:guest@127.0.0.1:5672// --backend rpc:// tasks.echo '["hi"]' '{"k": 1}'
//
// A task that failed prints its exception and traceback and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kombu-go/kombu/celery"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// run sends the task the arguments name and prints its result.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "redis://127.0.0.1:6379/0", "broker URL")
	backend := fs.String("backend", "", "result backend URL (redis://..., rpc://); default: the broker if Redis, else rpc://")
	queue := fs.String("queue", celery.DefaultQueue, "queue to send to")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the result")
	countdown := fs.Duration("countdown", 0, "run the task after this delay")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: client [flags] TASK [JSON-ARGS [JSON-KWARGS]]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 3 {
		fs.Usage()
		return errors.New("a task name, then optional JSON args and kwargs")
	}
	var targs []any
	var kwargs map[string]any
	if fs.NArg() > 1 {
		if err := json.Unmarshal([]byte(fs.Arg(1)), &targs); err != nil {
			return fmt.Errorf("args must be a JSON array: %w", err)
		}
	}
	if fs.NArg() > 2 {
		if err := json.Unmarshal([]byte(fs.Arg(2)), &kwargs); err != nil {
			return fmt.Errorf("kwargs must be a JSON object: %w", err)
		}
	}
	be := *backend
	if be == "" {
		be = "rpc://"
		if len(*broker) > 5 && (*broker)[:5] == "redis" {
			be = *broker
		}
	}
	c, err := celery.NewClient(celery.ClientOptions{Broker: *broker, Backend: be, DefaultQueue: *queue})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r, err := c.ApplyAsync(ctx, fs.Arg(0), celery.CallOptions{Args: targs, Kwargs: kwargs, Countdown: *countdown})
	if err != nil {
		return err
	}
	v, err := r.Get(ctx)
	var te *celery.TaskError
	if errors.As(err, &te) {
		fmt.Fprintf(stderr, "%s %s failed: %s.%s: %s\n%s", fs.Arg(0), r.ID, te.Module, te.Type, te.Message, te.Traceback)
		return err
	}
	if err != nil {
		return err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}
