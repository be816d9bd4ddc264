package celery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// pyApp is the Celery application of the interop tests: the same tasks the
// Go test worker registers (testTasks), with the same behaviour.
const pyApp = `
import os, time
from celery import Celery

app = Celery('kgoapp', broker=os.environ['KGO_BROKER'], backend=os.environ.get('KGO_BACKEND') or None)
app.conf.update(
    task_default_queue=os.environ.get('KGO_QUEUE', 'celery'),
    worker_enable_remote_control=os.environ.get('KGO_CONTROL') == '1',
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=600,
    control_queue_expires=10,
    event_queue_expires=10,
)

@app.task(name='tasks.add')
def add(*args):
    return sum(args)

@app.task(name='tasks.echo')
def echo(*args, **kwargs):
    return {'args': list(args), 'kwargs': kwargs}

@app.task(name='tasks.fail')
def fail():
    raise ValueError('boom')

@app.task(name='tasks.sleep')
def sleep(s):
    time.sleep(s)
    return s

@app.task(name='tasks.retry_once', bind=True, max_retries=3)
def retry_once(self, countdown=1):
    if self.request.retries == 0:
        raise self.retry(countdown=countdown)
    return 'retried %d' % self.request.retries
`

// pyClient runs the tasks from Python (send_task and apply_async) and
// prints what it got as one JSON line.
const pyClient = `
import json, sys, time
from kgoapp import app, add
q = sys.argv[1]
out = {}
out['send_task'] = app.send_task('tasks.add', args=[2, 3], queue=q).get(timeout=20)
out['apply_async'] = add.apply_async((4, 5, 6), queue=q).get(timeout=20)
out['echo'] = app.send_task('tasks.echo', args=['\u00e9', 1.5], kwargs={'k': [1, None]}, queue=q).get(timeout=20)
r = app.send_task('tasks.fail', queue=q)
try:
    r.get(timeout=20)
    out['fail'] = 'no exception'
except Exception as e:
    out['fail'] = [type(e).__name__, str(e), r.state, 'Traceback' in (r.traceback or '')]
t0 = time.time()
out['retry'] = [app.send_task('tasks.retry_once', queue=q).get(timeout=20), time.time() - t0]
t0 = time.time()
out['eta'] = [app.send_task('tasks.add', args=[1, 1], countdown=1, queue=q).get(timeout=20), time.time() - t0]
r = app.send_task('tasks.add', args=[1, 1], countdown=1, expires=0.5, queue=q)
try:
    out['expired'] = ['no exception', r.get(timeout=20)]
except Exception as e:
    out['expired'] = [type(e).__name__, r.state]
print(json.dumps(out))
`

// python returns the Python that imports Celery, or skips (fails under
// KOMBU_REQUIRE_BROKERS=1).
func python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" {
		transporttest.Require(t, "KOMBU_TEST_PYTHON is not set: no Celery to test against")
	}
	if out, err := exec.Command(py, "-c", "import celery").CombinedOutput(); err != nil {
		transporttest.Require(t, "%s cannot import celery (apt-get install python3-celery): %v %s", py, err, out)
	}
	return py
}

// interop is one broker's setting for the interop tests.
type interop struct {
	name, broker, backend string
}

// eachInterop runs fn on Redis (Redis result backend) and RabbitMQ (RPC
// result backend).
func eachInterop(t *testing.T, fn func(t *testing.T, py, dir string, b interop)) {
	py := python(t)
	for _, c := range []struct{ name, env, backend string }{
		{"redis", "KOMBU_TEST_REDIS_URL", ""},
		{"amqp", "KOMBU_TEST_AMQP_URL", "rpc://"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := transporttest.BrokerURL(t, c.env)
			backend := c.backend
			if backend == "" {
				backend = url
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "kgoapp.py"), []byte(pyApp), 0o644); err != nil {
				t.Fatal(err)
			}
			fn(t, py, dir, interop{name: c.name, broker: url, backend: backend})
		})
	}
}

// pyEnv is the environment of the Python processes.
func pyEnv(b interop, queue string, extra ...string) []string {
	return append(append(os.Environ(), "KGO_BROKER="+b.broker, "KGO_BACKEND="+b.backend, "KGO_QUEUE="+queue,
		"PYTHONDONTWRITEBYTECODE=1"), extra...)
}

// runPy runs a Python program in dir and returns its standard output.
func runPy(t *testing.T, ctx context.Context, py, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s\n%s", py, args, err, out, stderr.Bytes())
	}
	return out
}

// cleanup deletes the test's queues and exchanges from the broker when the
// test ends.
func cleanup(t *testing.T, url string, queues ...string) {
	t.Cleanup(func() {
		conn, err := messaging.NewConnection(url, messaging.Options{})
		if err != nil {
			return
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, name := range queues {
			if err := celery.DeleteQueue(ctx, conn, name); err != nil {
				t.Logf("cleanup of %s: %v", name, err)
			}
		}
	})
}

// Python's send_task and apply_async run on the Go worker, and Python
// reads the results (a failure included) from the Redis and RPC backends;
// a retry and an ETA task take their countdowns.
func TestInteropPythonClientGoWorker(t *testing.T) {
	eachInterop(t, func(t *testing.T, py, dir string, b interop) {
		queue := "kgo-" + messaging.NewUUID()[:8]
		cleanup(t, b.broker, queue)
		var retried atomic.Int32
		startWorker(t, celery.WorkerOptions{Broker: b.broker, Backend: b.backend, BackendOptions: testExpiry, Queues: []string{queue},
			Concurrency: 2, Hostname: queue + "@test"}, &retried)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out := runPy(t, ctx, py, dir, pyEnv(b, queue), "-c", pyClient, queue)
		var got struct {
			SendTask   int64          `json:"send_task"`
			ApplyAsync int64          `json:"apply_async"`
			Echo       map[string]any `json:"echo"`
			Fail       []any          `json:"fail"`
			Retry      []any          `json:"retry"`
			ETA        []any          `json:"eta"`
			Expired    []any          `json:"expired"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("python printed %s: %v", out, err)
		}
		t.Logf("python client on the Go worker: %s", bytes.TrimSpace(out))
		if got.SendTask != 5 || got.ApplyAsync != 15 {
			t.Errorf("add: send_task %d (want 5), apply_async %d (want 15)", got.SendTask, got.ApplyAsync)
		}
		if b, _ := json.Marshal(got.Echo); string(b) != `{"args":["é",1.5],"kwargs":{"k":[1,null]}}` {
			t.Errorf("echo returned %s", b)
		}
		if len(got.Fail) != 4 || got.Fail[0] != "ValueError" || got.Fail[1] != "boom" || got.Fail[2] != "FAILURE" ||
			got.Fail[3] != true {
			t.Errorf("fail: python saw %v, want [ValueError boom FAILURE true]", got.Fail)
		}
		if len(got.Retry) != 2 || got.Retry[0] != "retried 1" || got.Retry[1].(float64) < 0.9 || retried.Load() != 1 {
			t.Errorf("retry: %v (first attempts %d), want [retried 1, >= 1 s]", got.Retry, retried.Load())
		}
		if len(got.ETA) != 2 || got.ETA[0] != float64(2) || got.ETA[1].(float64) < 0.9 {
			t.Errorf("eta: %v, want [2, >= 1 s]", got.ETA)
		}
		if len(got.Expired) != 2 || got.Expired[0] != "TaskRevokedError" || got.Expired[1] != "REVOKED" {
			t.Errorf("expired (countdown 1 s, expires 0.5 s): %v, want [TaskRevokedError REVOKED]", got.Expired)
		}
	})
}

// The Go client's tasks run on a Python worker (solo pool) and Get returns
// the results, a failure as a *TaskError; a retry and an ETA task take
// their countdowns.
func TestInteropGoClientPythonWorker(t *testing.T) {
	eachInterop(t, func(t *testing.T, py, dir string, b interop) {
		queue := "kgo-" + messaging.NewUUID()[:8]
		cleanup(t, b.broker, queue)
		client, err := celery.NewClient(celery.ClientOptions{Broker: b.broker, Backend: b.backend, BackendOptions: testExpiry,
			DefaultQueue: queue})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// Sent before the worker starts: the queue holds them.
		add, err := client.SendTask(ctx, "tasks.add", []any{2, 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		echo, _ := client.ApplyAsync(ctx, "tasks.echo", celery.CallOptions{Args: []any{"é", 1.5},
			Kwargs: map[string]any{"k": []any{1, nil}}, Serializer: "json", Compression: "gzip"})
		fail, _ := client.SendTask(ctx, "tasks.fail", nil, nil)
		startPyWorker(t, py, dir, b, queue)

		if v, err := add.Get(ctx); err != nil || v != int64(5) {
			t.Errorf("tasks.add(2, 3) on Python = %v (%T), %v", v, v, err)
		}
		var e struct {
			Args   []any          `json:"args"`
			Kwargs map[string]any `json:"kwargs"`
		}
		if err := echo.GetInto(ctx, &e); err != nil || len(e.Args) != 2 || e.Args[0] != "é" || e.Args[1] != 1.5 {
			t.Errorf("tasks.echo on Python: %+v, %v", e, err)
		}
		_, err = fail.Get(ctx)
		var te *celery.TaskError
		if !errors.As(err, &te) || te.Type != "ValueError" || te.Message != "boom" ||
			!strings.Contains(te.Traceback, "ValueError: boom") {
			t.Errorf("tasks.fail on Python: %#v", err)
		}
		start := time.Now()
		retry, _ := client.SendTask(ctx, "tasks.retry_once", nil, nil)
		if v, err := retry.Get(ctx); err != nil || v != "retried 1" || time.Since(start) < 900*time.Millisecond {
			t.Errorf("tasks.retry_once on Python: %v, %v after %v", v, err, time.Since(start))
		}
		start = time.Now()
		eta, _ := client.ApplyAsync(ctx, "tasks.add", celery.CallOptions{Args: []any{1, 1}, Countdown: time.Second})
		if v, err := eta.Get(ctx); err != nil || v != int64(2) || time.Since(start) < 900*time.Millisecond {
			t.Errorf("ETA task on Python: %v, %v after %v", v, err, time.Since(start))
		}
		if s, err := eta.State(ctx); err != nil || s != celery.Success {
			t.Errorf("state %s, %v", s, err)
		}
		// Due after it expires: the Python worker revokes it.
		exp, _ := client.ApplyAsync(ctx, "tasks.add", celery.CallOptions{Args: []any{1, 1}, Countdown: time.Second,
			ExpiresIn: 500 * time.Millisecond})
		if _, err := exp.Get(ctx); !errors.As(err, &te) || te.State != celery.Revoked || te.Type != "TaskRevokedError" {
			t.Errorf("expired task on Python: %#v, want REVOKED TaskRevokedError", err)
		}
	})
}

// startPyWorker runs a solo-pool Celery worker of dir/kgoapp.py on queue
// until the test ends (warm shutdown, then killed).
func startPyWorker(t *testing.T, py, dir string, b interop, queue string, extra ...string) {
	t.Helper()
	args := append([]string{"-m", "celery", "-A", "kgoapp", "worker", "--pool=solo", "--concurrency=1",
		"--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=WARNING",
		"-Q", queue, "-n", "py-" + queue + "@%h"}, extra...)
	cmd := exec.Command(py, args...)
	cmd.Dir, cmd.Env = dir, pyEnv(b, queue)
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "worker.log")); err == nil {
				t.Logf("celery worker log:\n%s", b)
			}
		}
	})
}

// testExpiry keeps the tests' results ten minutes (the Python app's
// result_expires): the broker is shared.
var testExpiry = celery.BackendOptions{Expires: 10 * time.Minute}
