package celery_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
)

// With a prefetch count of 1, a task whose ETA is in the future waits on a
// hub timer and the prefetch count grows by one, so the task behind it
// runs at once (Celery's QoS increment).
func TestWorkerETAPrefetchIncrement(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	be := newMemBackend()
	startWorker(t, celery.WorkerOptions{Broker: url, ResultBackend: be, Concurrency: 1, PrefetchMultiplier: 1},
		new(atomic.Int32))
	client, err := celery.NewClient(celery.ClientOptions{Broker: url, ResultBackend: be})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	late, _ := client.ApplyAsync(ctx, "tasks.add", celery.CallOptions{Args: []any{1, 1}, Countdown: 3 * time.Second})
	now, _ := client.SendTask(ctx, "tasks.add", []any{7}, nil)
	start := time.Now()
	if v, err := now.Get(ctx); err != nil || v != int64(7) {
		t.Fatalf("task behind the ETA task: %v, %v", v, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the task behind an ETA task waited %v: the prefetch window was not raised", d)
	}
	if v, err := late.Get(ctx); err != nil || v != int64(2) {
		t.Fatalf("ETA task: %v, %v", v, err)
	}
}

// A protocol 1 message (the task dict as the body, no task header) runs.
func TestWorkerProtocol1(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	be := newMemBackend()
	startWorker(t, celery.WorkerOptions{Broker: url, ResultBackend: be}, new(atomic.Int32))
	p := rawProducer(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := messaging.NewUUID()
	q := messaging.NewQueue("celery", messaging.NewExchange("celery", messaging.Direct), "celery")
	body := map[string]any{"task": "tasks.add", "id": id, "args": []any{40, 2}, "kwargs": map[string]any{},
		"retries": 0, "eta": nil, "expires": nil, "utc": true, "callbacks": nil, "errbacks": nil,
		"timelimit": []any{nil, nil}, "taskset": nil, "chord": nil}
	if err := p.Publish(ctx, body, messaging.PublishOptions{RoutingKey: "celery", CorrelationID: id,
		Declare: []messaging.Declaration{q}}); err != nil {
		t.Fatal(err)
	}
	if v, err := celery.NewAsyncResult(id, be).Get(ctx); err != nil || v != int64(42) {
		t.Fatalf("protocol 1 tasks.add(40, 2) = %v, %v", v, err)
	}
}

// acks_late with a RejectError(requeue) puts the message back, and it runs
// again; routes send a task to another queue; msgpack and gzip are
// accepted.
func TestWorkerAcksLateRejectRoutes(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	be := newMemBackend()
	w := startWorker(t, celery.WorkerOptions{Broker: url, ResultBackend: be, Queues: []string{"celery", "special"},
		AcksLate: true}, new(atomic.Int32))
	var attempts atomic.Int32
	w.Register("tasks.flaky", func(ctx context.Context, _ []any, _ map[string]any) (any, error) {
		if attempts.Add(1) == 1 {
			return nil, &celery.RejectError{Requeue: true, Reason: "not yet"}
		}
		tk, _ := celery.TaskFromContext(ctx)
		return tk.RoutingKey, nil
	}, celery.TaskOptions{})
	client, err := celery.NewClient(celery.ClientOptions{Broker: url, ResultBackend: be, Serializer: "msgpack",
		Compression: "gzip", Routes: celery.RouteMap(map[string]celery.Route{"tasks.flaky": {Queue: "special"}})})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := client.SendTask(ctx, "tasks.flaky", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx); err != nil || v != "special" || attempts.Load() != 2 {
		t.Fatalf("tasks.flaky: %v, %v after %d attempts; want it run twice from queue special", v, err, attempts.Load())
	}
	if got := be.states(r.ID); len(got) != 1 || got[0] != celery.Success {
		t.Errorf("states %v: a rejection stores nothing", got)
	}
	// max_retries: a task that always retries fails with
	// MaxRetriesExceededError.
	w.Register("tasks.always_retry", func(context.Context, []any, map[string]any) (any, error) {
		return nil, celery.RetryAfter(time.Millisecond, errors.New("again"))
	}, celery.TaskOptions{MaxRetries: 2})
	r, _ = client.SendTask(ctx, "tasks.always_retry", nil, nil)
	if _, err := r.Get(ctx); !errors.Is(err, celery.ErrMaxRetries) {
		t.Fatalf("tasks.always_retry: %v, want ErrMaxRetries", err)
	}
	if got := be.states(r.ID); len(got) != 3 || got[0] != celery.Retry || got[2] != celery.Failure {
		t.Errorf("always_retry states %v, want RETRY RETRY FAILURE", got)
	}
}

// Stopping a worker that holds an ETA task not yet due gives the task back
// to the broker at once (the drain does not wait for it), and the next
// worker runs it.
func TestWorkerShutdownReleasesETA(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	be := newMemBackend()
	w, err := celery.NewWorker(celery.WorkerOptions{Broker: url, ResultBackend: be, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	testTasks(w, new(atomic.Int32))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	client, err := celery.NewClient(celery.ClientOptions{Broker: url, ResultBackend: be})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer tcancel()
	eta, _ := client.ApplyAsync(tctx, "tasks.add", celery.CallOptions{Args: []any{3, 4}, Countdown: 1500 * time.Millisecond})
	probe, _ := client.SendTask(tctx, "tasks.add", []any{0}, nil)
	if _, err := probe.Get(tctx); err != nil { // the ETA task, sent first, is held by now
		t.Fatal(err)
	}
	stopped := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(stopped); d > 1200*time.Millisecond {
		t.Errorf("Run took %v to stop while holding an ETA task (drain timeout 5 s)", d)
	}
	if s, _ := eta.State(tctx); s != celery.Pending {
		t.Errorf("ETA task %s before its ETA", s)
	}
	startWorker(t, celery.WorkerOptions{Broker: url, ResultBackend: be}, new(atomic.Int32))
	if v, err := eta.Get(tctx); err != nil || v != int64(7) {
		t.Fatalf("ETA task after the restart: %v, %v", v, err)
	}
}
