package celery_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
)

// pyControl asks the node in argv[1] for active, stats and registered
// through Celery's remote control, then tells it to shut down.
const pyControl = `
import json, sys
from kgoapp import app
h = sys.argv[1]
i = app.control.inspect(destination=[h], timeout=5)
out = {'active': i.active(), 'stats': i.stats(), 'registered': i.registered()}
app.control.shutdown(destination=[h])
print(json.dumps(out, default=str))
`

// lineLog collects a process's output lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) has(subs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// The Go worker is seen by Celery's tools: "celery events --dump" shows
// its worker and task events, "celery inspect ping" gets its pong, inspect
// active/stats/registered answer, and "control shutdown" stops it
// gracefully (worker-offline is sent).
func TestInteropRemoteControlAndEvents(t *testing.T) {
	eachInterop(t, func(t *testing.T, py, dir string, b interop) {
		queue := "kgo-" + messaging.NewUUID()[:8]
		host := queue + "@test"
		cleanup(t, b.broker, queue)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		// celery events --dump, running until the test ends.
		dump := exec.Command(py, "-m", "celery", "-A", "kgoapp", "events", "--dump")
		dump.Dir, dump.Env = dir, pyEnv(b, queue)
		stdout, err := dump.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := dump.Start(); err != nil {
			t.Fatal(err)
		}
		var evlog lineLog
		readDone := make(chan struct{})
		go func() { // ends when the dumper exits (killed below)
			defer close(readDone)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				evlog.mu.Lock()
				evlog.lines = append(evlog.lines, sc.Text())
				evlog.mu.Unlock()
			}
		}()
		defer func() {
			dump.Process.Signal(syscall.SIGTERM)
			if !waitFor(5*time.Second, func() bool {
				select {
				case <-readDone:
					return true
				default:
					return false
				}
			}) {
				dump.Process.Kill()
				<-readDone
			}
			dump.Wait()
			if t.Failed() {
				t.Logf("celery events --dump:\n%s", evlog.String())
			}
		}()

		w, err := celery.NewWorker(celery.WorkerOptions{Broker: b.broker, Backend: b.backend, BackendOptions: testExpiry,
			Queues: []string{queue}, Concurrency: 2, Hostname: host, SendEvents: true, RemoteControl: true,
			HeartbeatInterval: 300 * time.Millisecond, DrainTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		testTasks(w, new(atomic.Int32))
		// tasks.wait runs until the test releases it: it is the task
		// inspect active sees, and the one shutdown lets finish.
		release := make(chan struct{})
		var releaseOnce sync.Once
		defer releaseOnce.Do(func() { close(release) })
		w.Register("tasks.wait", func(ctx context.Context, _ []any, _ map[string]any) (any, error) {
			select {
			case <-release:
				return "released", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}, celery.TaskOptions{})
		runDone := make(chan error, 1)
		go func() { runDone <- w.Run(ctx) }()
		defer func() {
			cancel()
			<-runDone
		}()

		// The dumper hears the worker's heartbeats once it listens.
		if !waitFor(20*time.Second, func() bool { return evlog.has(host, "] heartbeat: ") }) {
			t.Fatalf("celery events --dump showed no heartbeat of %s", host)
		}

		// celery inspect ping, the real command.
		out := runPy(t, ctx, py, dir, pyEnv(b, queue), "-m", "celery", "-A", "kgoapp", "inspect", "ping",
			"-d", host, "--timeout", "5")
		if !strings.Contains(string(out), host) || !strings.Contains(string(out), "pong") {
			t.Errorf("celery inspect ping printed:\n%s", out)
		}

		client, err := celery.NewClient(celery.ClientOptions{Broker: b.broker, Backend: b.backend, BackendOptions: testExpiry,
			DefaultQueue: queue})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		add, _ := client.SendTask(ctx, "tasks.add", []any{20, 22}, nil)
		fail, _ := client.SendTask(ctx, "tasks.fail", nil, nil)
		wait, _ := client.SendTask(ctx, "tasks.wait", nil, nil)
		if v, err := add.Get(ctx); err != nil || v != int64(42) {
			t.Fatalf("tasks.add: %v, %v", v, err)
		}
		fail.Get(ctx)

		// inspect active (tasks.wait is running), stats, registered;
		// then control shutdown.
		if !waitFor(10*time.Second, func() bool { return evlog.has(host, "task started", "tasks.wait") }) {
			t.Errorf("tasks.wait did not start")
		}
		out = runPy(t, ctx, py, dir, pyEnv(b, queue), "-c", pyControl, host)
		time.Sleep(200 * time.Millisecond) // the worker is draining: tasks.wait still runs
		releaseOnce.Do(func() { close(release) })
		var got struct {
			Active     map[string][]map[string]any `json:"active"`
			Stats      map[string]map[string]any   `json:"stats"`
			Registered map[string][]string         `json:"registered"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("control script printed %s: %v", out, err)
		}
		if a := got.Active[host]; len(a) != 1 || a[0]["name"] != "tasks.wait" || a[0]["id"] != wait.ID {
			t.Errorf("inspect active: %v, want tasks.wait %s", got.Active, wait.ID)
		}
		if s := got.Stats[host]; s == nil || s["total"] == nil || s["pool"] == nil {
			t.Errorf("inspect stats: %v", got.Stats)
		}
		if r := got.Registered[host]; len(r) == 0 || !strings.Contains(strings.Join(r, " "), "tasks.add") {
			t.Errorf("inspect registered: %v", got.Registered)
		}
		// Shutdown is graceful: the running tasks.wait finishes first.
		select {
		case err := <-runDone:
			runDone <- err
			if err != nil {
				t.Errorf("Run after shutdown: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the worker did not stop on control shutdown")
		}
		if v, err := wait.Get(ctx); err != nil || v != "released" {
			t.Errorf("tasks.wait, running at shutdown: %v, %v", v, err)
		}
		for _, ev := range [][]string{
			{host, "task received", "tasks.add", "args=(20, 22)"}, {host, "task started"}, {host, "task succeeded", "result=42"},
			{host, "task failed", "ValueError: boom"}, {host, "] shutdown: "}, // worker-offline, as the dumper names it
		} {
			if !waitFor(5*time.Second, func() bool { return evlog.has(ev...) }) {
				t.Errorf("celery events --dump showed no line with %q", ev)
			}
		}
		for _, line := range strings.Split(evlog.String(), "\n") {
			if !strings.Contains(line, "] heartbeat: ") {
				t.Logf("events --dump: %s", line)
			}
		}
	})
}
