package celery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
)

// memBackend is an in-process Backend for tests on the memory transport.
type memBackend struct {
	mu      sync.Mutex
	metas   map[string]celery.Meta
	history map[string][]celery.State
	changed chan struct{}
}

func newMemBackend() *memBackend {
	return &memBackend{metas: map[string]celery.Meta{}, history: map[string][]celery.State{}, changed: make(chan struct{})}
}

func (b *memBackend) Store(_ context.Context, _ *celery.Task, m celery.Meta) error {
	b.mu.Lock()
	b.metas[m.TaskID] = m
	b.history[m.TaskID] = append(b.history[m.TaskID], m.Status)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	return nil
}

func (b *memBackend) Get(_ context.Context, id string) (celery.Meta, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.metas[id]; ok {
		return m, nil
	}
	return celery.Meta{TaskID: id, Status: celery.Pending}, nil
}

func (b *memBackend) Wait(ctx context.Context, id string) (celery.Meta, error) {
	for {
		b.mu.Lock()
		m, ok := b.metas[id]
		ch := b.changed
		b.mu.Unlock()
		if ok && m.Status.Ready() {
			return m, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return celery.Meta{}, ctx.Err()
		}
	}
}

func (b *memBackend) Forget(_ context.Context, id string) error {
	b.mu.Lock()
	delete(b.metas, id)
	b.mu.Unlock()
	return nil
}

func (b *memBackend) Close() error { return nil }

func (b *memBackend) states(id string) []celery.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]celery.State(nil), b.history[id]...)
}

// testTasks registers the example tasks on w.
func testTasks(w *celery.Worker, retried *atomic.Int32) {
	w.Register("tasks.add", func(_ context.Context, args []any, _ map[string]any) (any, error) {
		var sum int64
		for _, a := range args {
			switch n := a.(type) {
			case int64:
				sum += n
			case float64:
				sum += int64(n)
			default:
				return nil, fmt.Errorf("add: %T is not a number", a)
			}
		}
		return sum, nil
	}, celery.TaskOptions{})
	w.Register("tasks.fail", func(context.Context, []any, map[string]any) (any, error) {
		return nil, &celery.TaskError{Type: "ValueError", Module: "builtins", Message: "boom"}
	}, celery.TaskOptions{})
	w.Register("tasks.sleep", func(ctx context.Context, args []any, _ map[string]any) (any, error) {
		d, _ := celery.Seconds(args[0])
		select {
		case <-time.After(d):
			return args[0], nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, celery.TaskOptions{})
	w.Register("tasks.echo", func(_ context.Context, args []any, kwargs map[string]any) (any, error) {
		return map[string]any{"args": args, "kwargs": kwargs}, nil
	}, celery.TaskOptions{})
	// tasks.retry_once(countdown=1): retried once after countdown seconds,
	// as the Python app's task of the same name.
	w.Register("tasks.retry_once", func(ctx context.Context, _ []any, kwargs map[string]any) (any, error) {
		t, _ := celery.TaskFromContext(ctx)
		if t.Retries == 0 {
			retried.Add(1)
			countdown, ok := celery.Seconds(kwargs["countdown"])
			if !ok {
				countdown = time.Second
			}
			return nil, celery.RetryAfter(countdown, errors.New("first attempt"))
		}
		return fmt.Sprintf("retried %d", t.Retries), nil
	}, celery.TaskOptions{})
	w.Register("tasks.slow", func(ctx context.Context, _ []any, _ map[string]any) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, celery.TaskOptions{SoftTimeLimit: 100 * time.Millisecond})
	w.Register("tasks.stuck", func(ctx context.Context, _ []any, _ map[string]any) (any, error) {
		time.Sleep(400 * time.Millisecond) // ignores ctx: the hard limit fires first
		return "late", nil
	}, celery.TaskOptions{TimeLimit: 100 * time.Millisecond})
	w.Register("tasks.panic", func(context.Context, []any, map[string]any) (any, error) {
		panic("oops")
	}, celery.TaskOptions{})
}

// startWorker runs a worker on url until the test ends.
func startWorker(t testing.TB, opts celery.WorkerOptions, retried *atomic.Int32) *celery.Worker {
	t.Helper()
	opts.DrainTimeout = 5 * time.Second
	w, err := celery.NewWorker(opts)
	if err != nil {
		t.Fatal(err)
	}
	testTasks(w, retried)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run: %v", err)
		}
		w.Close()
	})
	return w
}

func TestWorkerMemory(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	be := newMemBackend()
	var retried atomic.Int32
	startWorker(t, celery.WorkerOptions{Broker: url, ResultBackend: be, Concurrency: 2}, &retried)
	client, err := celery.NewClient(celery.ClientOptions{Broker: url, ResultBackend: be})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	r, err := client.SendTask(ctx, "tasks.add", []any{2, 3, 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Get(ctx); err != nil || v != int64(9) {
		t.Fatalf("tasks.add(2, 3, 4) = %v (%T), %v; want 9", v, v, err)
	}

	r, _ = client.SendTask(ctx, "tasks.fail", nil, nil)
	_, err = r.Get(ctx)
	var te *celery.TaskError
	if !errors.As(err, &te) || te.Type != "ValueError" || te.Message != "boom" || !errors.Is(err, celery.ErrTaskFailed) ||
		!strings.Contains(te.Traceback, "Traceback") {
		t.Fatalf("tasks.fail: %#v", err)
	}

	r, _ = client.SendTask(ctx, "tasks.retry_once", nil, map[string]any{"countdown": 0.2})
	if v, err := r.Get(ctx); err != nil || v != "retried 1" {
		t.Fatalf("tasks.retry_once = %v, %v", v, err)
	}
	if got := be.states(r.ID); len(got) != 2 || got[0] != celery.Retry || got[1] != celery.Success {
		t.Errorf("retry_once states %v, want [RETRY SUCCESS]", got)
	}

	r, _ = client.SendTask(ctx, "tasks.slow", nil, nil)
	if _, err := r.Get(ctx); !errors.As(err, &te) || te.Type != "SoftTimeLimitExceeded" {
		t.Errorf("tasks.slow: %v, want SoftTimeLimitExceeded", err)
	}
	r, _ = client.SendTask(ctx, "tasks.stuck", nil, nil)
	if _, err := r.Get(ctx); !errors.As(err, &te) || te.Type != "TimeLimitExceeded" {
		t.Errorf("tasks.stuck: %v, want TimeLimitExceeded", err)
	}
	r, _ = client.SendTask(ctx, "tasks.panic", nil, nil)
	if _, err := r.Get(ctx); !errors.As(err, &te) || !strings.Contains(te.Message, "oops") {
		t.Errorf("tasks.panic: %v", err)
	}

	// Expired before it was received: revoked, never run.
	r, _ = client.ApplyAsync(ctx, "tasks.add", celery.CallOptions{Args: []any{1}, Expires: time.Now().Add(-time.Second)})
	if _, err := r.Get(ctx); !errors.As(err, &te) || te.State != celery.Revoked || te.Type != "TaskRevokedError" {
		t.Errorf("expired task: %v, want REVOKED", err)
	}

	// An ETA task does not hold up the tasks behind it.
	start := time.Now()
	late, _ := client.ApplyAsync(ctx, "tasks.add", celery.CallOptions{Args: []any{1, 1}, Countdown: 700 * time.Millisecond})
	now, _ := client.SendTask(ctx, "tasks.add", []any{5}, nil)
	if v, err := now.Get(ctx); err != nil || v != int64(5) {
		t.Fatalf("task behind an ETA task: %v, %v", v, err)
	}
	if s, _ := late.State(ctx); s != celery.Pending && time.Since(start) < 600*time.Millisecond {
		t.Errorf("ETA task state before its ETA: %s", s)
	}
	if v, err := late.Get(ctx); err != nil || v != int64(2) {
		t.Fatalf("ETA task: %v, %v", v, err)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("ETA task ran after %v, before its countdown", d)
	}
	if err := late.Forget(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := late.State(ctx); s != celery.Pending {
		t.Errorf("state after Forget: %s", s)
	}
}

// A message that is not a Celery task goes to the decode-error path and
// is counted, not dropped silently; an unregistered task is rejected.
func TestWorkerMalformed(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	bad := make(chan error, 4)
	logs := &syncBuffer{}
	w := startWorker(t, celery.WorkerOptions{Broker: url, ResultBackend: newMemBackend(),
		Logger:        slog.New(slog.NewTextHandler(logs, nil)),
		OnDecodeError: func(m *messaging.Message, err error) { bad <- err; m.Reject() }}, new(atomic.Int32))
	p := rawProducer(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := messaging.NewQueue("celery", messaging.NewExchange("celery", messaging.Direct), "celery")
	for _, body := range []any{
		[]any{[]any{1}, map[string]any{}},          // protocol 2 with a 2-element body
		map[string]any{"args": []any{1}},           // protocol 1 without task
		[]any{"not-a-list", map[string]any{}, nil}, // args not a list
	} {
		h := map[string]any{"task": "tasks.add", "id": messaging.NewUUID()}
		if _, ok := body.(map[string]any); ok {
			h = nil // protocol 1: the task is in the body
		}
		if err := p.Publish(ctx, body, messaging.PublishOptions{RoutingKey: "celery", Headers: h,
			Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		select {
		case err := <-bad:
			if !errors.Is(err, celery.ErrMalformed) {
				t.Errorf("decode error %d: %v, want ErrMalformed", i, err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of 3 malformed messages reached OnDecodeError", i)
		}
	}
	if n := w.DecodeErrors(); n != 3 {
		t.Errorf("DecodeErrors = %d, want 3", n)
	}
	// A well-formed task of an unknown name is logged and rejected, not run.
	if err := p.Publish(ctx, []any{[]any{}, map[string]any{}, nil}, messaging.PublishOptions{RoutingKey: "celery",
		Headers: map[string]any{"task": "tasks.nope", "id": messaging.NewUUID()}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "unregistered task") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "unregistered task, rejecting") || !strings.Contains(out, "tasks.nope") {
		t.Errorf("worker log has no rejection of tasks.nope:\n%s", out)
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rawProducer returns a plain messaging producer on url, closed when the
// test ends, for hand-made task messages.
func rawProducer(t *testing.T, url string) *messaging.Producer {
	t.Helper()
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
