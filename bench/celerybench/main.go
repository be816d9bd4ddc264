// Command celerybench measures Celery task round trips on one broker, in
// one run: Go client → Go worker (package celery), Python client → Go
// worker, and Python client → Python worker with the solo and the prefork
// pool (Debian's python3-celery).
//
//	go run ./bench/celerybench --redis redis://127.0.0.1:6379/0 --amqp amqp://guest:guest@127.0.0.1:5672// --n 500
//
// Each row runs tasks.add(i, i) in two ways: sequential round trips (send,
// wait for the result, repeat: the p50 and p90 latency and the rate), and
// a window (send n tasks, then wait for every result: the rate with tasks
// in flight). Redis uses the Redis result backend, RabbitMQ the RPC one.
// Workers run with a concurrency of 2 (the prefork pool: 2 processes).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
)

func main() {
	redisURL := flag.String("redis", "", "Redis broker URL (Redis result backend); empty: skip")
	amqpURL := flag.String("amqp", "", "AMQP broker URL (RPC result backend); empty: skip")
	py := flag.String("python", "/usr/bin/python3", "Python with Celery")
	n := flag.Int("n", 300, "tasks per measurement")
	warmup := flag.Int("warmup", 20, "warm-up round trips before each row")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(*redisURL, *amqpURL, *py, *n, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "celerybench:", err)
		os.Exit(1)
	}
}

// result is one row's figures.
type result struct {
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	SeqTPS float64 `json:"seq_tps"`
	WinTPS float64 `json:"win_tps"`
}

func run(redisURL, amqpURL, py string, n, warmup int) error {
	dir, err := os.MkdirTemp("", "celerybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "benchapp.py"), []byte(pyApp), 0o644); err != nil {
		return err
	}
	fmt.Printf("celerybench: n=%d, warm-up %d, %s, worker concurrency 2, GOMAXPROCS %d, %s\n\n", n, warmup,
		time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), runtimeInfo(py))
	fmt.Println("| broker | client → worker | p50 round trip | p90 | sequential tasks/s | tasks/s, n in flight |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, b := range []struct{ name, url, backend string }{
		{"redis", redisURL, redisURL}, {"rabbitmq", amqpURL, "rpc://"},
	} {
		if b.url == "" {
			continue
		}
		rows, err := benchBroker(dir, py, b.url, b.backend, n, warmup)
		for _, r := range rows {
			fmt.Printf("| %s | %s | %.2f ms | %.2f ms | %.0f | %.0f |\n", b.name, r.name, r.P50ms, r.P90ms, r.SeqTPS, r.WinTPS)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
	}
	return nil
}

func runtimeInfo(py string) string {
	out, err := exec.Command(py, "-c", "import celery, kombu, sys; print('Python %d.%d, Celery %s, Kombu %s' % "+
		"(sys.version_info[0], sys.version_info[1], celery.__version__, kombu.__version__))").Output()
	if err != nil {
		return "python: " + err.Error()
	}
	return string(out[:len(out)-1])
}

// benchExpiry keeps results ten minutes, as the Python side's
// result_expires: the broker is shared.
var benchExpiry = celery.BackendOptions{Expires: 10 * time.Minute}

type row struct {
	name string
	result
}

// benchBroker measures the four rows on one broker.
func benchBroker(dir, py, url, backend string, n, warmup int) ([]row, error) {
	var rows []row
	queue := "celerybench-" + messaging.NewUUID()[:8]
	defer deleteQueue(url, queue)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := celery.NewWorker(celery.WorkerOptions{Broker: url, Backend: backend, Queues: []string{queue},
		Concurrency: 2, Hostname: queue + "@go", BackendOptions: benchExpiry})
	if err != nil {
		cancel()
		return nil, err
	}
	w.Register("tasks.add", func(_ context.Context, args []any, _ map[string]any) (any, error) {
		var sum float64
		for _, a := range args {
			f, _ := celery.Number(a)
			sum += f
		}
		return int64(sum), nil
	}, celery.TaskOptions{})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopGo := func() {
		cancel()
		<-done
		w.Close()
	}
	r, err := goClient(url, backend, queue, n, warmup)
	if err != nil {
		stopGo()
		return rows, err
	}
	rows = append(rows, row{"Go → Go", r})
	r, err = pyClient(dir, py, url, backend, queue, n, warmup)
	stopGo()
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{"Python → Go", r})
	for _, pool := range []string{"solo", "prefork"} {
		stop, err := pyWorker(dir, py, url, backend, queue, pool)
		if err != nil {
			return rows, err
		}
		r, err := pyClient(dir, py, url, backend, queue, n, warmup)
		stop()
		if err != nil {
			return rows, err
		}
		rows = append(rows, row{"Python → Python " + pool, r})
	}
	return rows, nil
}

// goClient measures with the Go client.
func goClient(url, backend, queue string, n, warmup int) (result, error) {
	c, err := celery.NewClient(celery.ClientOptions{Broker: url, Backend: backend, DefaultQueue: queue,
		BackendOptions: benchExpiry})
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	call := func(i int) (*celery.AsyncResult, error) { return c.SendTask(ctx, "tasks.add", []any{i, i}, nil) }
	for i := range warmup {
		r, err := call(i)
		if err == nil {
			_, err = r.Get(ctx)
		}
		if err != nil {
			return result{}, err
		}
	}
	lat := make([]float64, 0, n)
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		r, err := call(i)
		if err == nil {
			_, err = r.Get(ctx)
		}
		if err != nil {
			return result{}, err
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	seq := time.Since(start)
	start = time.Now()
	rs := make([]*celery.AsyncResult, n)
	for i := range n {
		if rs[i], err = call(i); err != nil {
			return result{}, err
		}
	}
	for _, r := range rs {
		if _, err := r.Get(ctx); err != nil {
			return result{}, err
		}
	}
	win := time.Since(start)
	slices.Sort(lat)
	return result{P50ms: lat[len(lat)/2], P90ms: lat[len(lat)*9/10], SeqTPS: float64(n) / seq.Seconds(),
		WinTPS: float64(n) / win.Seconds()}, nil
}

// pyClient measures with Celery's client, in a Python process.
func pyClient(dir, py, url, backend, queue string, n, warmup int) (result, error) {
	cmd := exec.Command(py, "-c", pyBench, queue, fmt.Sprint(n), fmt.Sprint(warmup))
	cmd.Dir, cmd.Env = dir, pyEnv(url, backend, queue)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("python client: %w", err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("python client printed %q: %w", out, err)
	}
	return r, nil
}

// pyWorker starts a Celery worker and returns its stop function (warm
// shutdown). The client's warm-up waits for it to start.
func pyWorker(dir, py, url, backend, queue, pool string) (func(), error) {
	cmd := exec.Command(py, "-m", "celery", "-A", "benchapp", "worker", "--pool="+pool, "--concurrency=2",
		"--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=ERROR", "-Q", queue,
		"-n", queue+"-"+pool+"@%h")
	cmd.Dir, cmd.Env = dir, pyEnv(url, backend, queue)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		t.Stop()
	}, nil
}

func pyEnv(url, backend, queue string) []string {
	return append(os.Environ(), "KGO_BROKER="+url, "KGO_BACKEND="+backend, "KGO_QUEUE="+queue,
		"PYTHONDONTWRITEBYTECODE=1")
}

// deleteQueue removes the benchmark's queue and exchange.
func deleteQueue(url, queue string) {
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	celery.DeleteQueue(ctx, conn, queue)
}

const pyApp = `
import os
from celery import Celery
app = Celery('benchapp', broker=os.environ['KGO_BROKER'], backend=os.environ['KGO_BACKEND'])
app.conf.update(task_default_queue=os.environ['KGO_QUEUE'], worker_enable_remote_control=False,
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True, result_expires=600)

@app.task(name='tasks.add')
def add(x, y):
    return x + y
`

// pyBench is the Python client's measurement, the same as goClient's.
const pyBench = `
import json, sys, time
from benchapp import add
n, warmup = int(sys.argv[2]), int(sys.argv[3])
for i in range(warmup):
    add.delay(i, i).get(timeout=60)
lat = []
start = time.perf_counter()
for i in range(n):
    t0 = time.perf_counter()
    add.delay(i, i).get(timeout=60)
    lat.append((time.perf_counter() - t0) * 1000)
seq = time.perf_counter() - start
start = time.perf_counter()
rs = [add.delay(i, i) for i in range(n)]
for r in rs:
    r.get(timeout=120)
win = time.perf_counter() - start
lat.sort()
print(json.dumps({'p50_ms': lat[len(lat) // 2], 'p90_ms': lat[len(lat) * 9 // 10],
                  'seq_tps': n / seq, 'win_tps': n / win}))
`
