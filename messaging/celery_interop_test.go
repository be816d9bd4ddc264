package messaging_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// celeryApp is a Celery application with one task, kgo.add, that appends
// what it received to the file KGO_OUT as a JSON line.
const celeryApp = `
import json, os
from celery import Celery

app = Celery('kgo', broker=os.environ['KGO_BROKER'])
app.conf.update(
    task_default_queue=os.environ['KGO_QUEUE'],
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

@app.task(name='kgo.add', bind=True)
def add(self, x, y, note=''):
    with open(os.environ['KGO_OUT'], 'a') as f:
        f.write(json.dumps({'id': self.request.id, 'root_id': self.request.root_id,
                            'args': [x, y], 'note': note, 'sum': x + y}) + '\n')
    return x + y
`

// celeryPython returns the Python that can import Celery (KOMBU_TEST_PYTHON
// or /usr/bin/python3), or skips (fails with KOMBU_REQUIRE_BROKERS=1).
func celeryPython(t *testing.T) string { return pythonWith(t, "celery") }

// pythonWith returns the Python (KOMBU_TEST_PYTHON or /usr/bin/python3)
// if it can import module (Debian's python3-<module>), or skips (fails
// with KOMBU_REQUIRE_BROKERS=1).
func pythonWith(t *testing.T, module string) string {
	t.Helper()
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if out, err := exec.Command(py, "-c", "import "+module).CombinedOutput(); err != nil {
		transporttest.Require(t, "%s cannot import %s (apt-get install python3-%s): %v %s", py, module, module, err, out)
	}
	return py
}

// A Go producer sends a Celery task message (protocol 2: the task and id in
// the headers, [args, kwargs, embed] as the body) that a real Celery worker
// runs; and a task Celery sends is read by a Go consumer, headers and body
// as Celery wrote them. On Redis and on RabbitMQ.
func TestCeleryInterop(t *testing.T) {
	py := celeryPython(t)
	eachBroker(t, func(t *testing.T, url string, conn *messaging.Connection) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		name := "celery-interop-" + messaging.NewUUID()[:8]
		toCelery := messaging.NewQueue(name, messaging.NewExchange(name, messaging.Direct), name)
		fromCelery := messaging.NewQueue(name+"-go", messaging.NewExchange(name+"-go", messaging.Direct), name+"-go")
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			if ch, err := conn.DefaultChannel(cctx); err == nil {
				for _, q := range []messaging.Queue{toCelery, fromCelery} {
					q.Delete(cctx, ch, messaging.DeleteOptions{})
					q.Exchange.Delete(cctx, ch, messaging.DeleteOptions{})
				}
			}
		}()

		// Go -> Celery: the message a Celery client would send for
		// add.apply_async((2, 3), {'note': ...}).
		id := messaging.NewUUID()
		p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: toCelery.Exchange, Serializer: "json"})
		if err != nil {
			t.Fatal(err)
		}
		headers := map[string]any{
			"lang": "py", "task": "kgo.add", "id": id, "shadow": nil, "eta": nil, "expires": nil,
			"group": nil, "group_index": nil, "retries": 0, "timelimit": []any{nil, nil},
			"root_id": id, "parent_id": nil, "argsrepr": "(2, 3)", "kwargsrepr": "{'note': 'é from go'}",
			"origin": "kombu-go@test", "ignore_result": true,
		}
		body := []any{[]any{2, 3}, map[string]any{"note": "é from go"},
			map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}}
		if err := p.Publish(ctx, body, messaging.PublishOptions{RoutingKey: name, Headers: headers,
			CorrelationID: id, Declare: []messaging.Declaration{toCelery}}); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "kgoapp.py"), []byte(celeryApp), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out.jsonl")
		exited, stop := startCeleryWorker(t, py, dir, url, name, out)
		line := waitForLine(t, out, 45*time.Second, exited)
		// Stopped before the queues are deleted: a worker whose queue
		// goes away declares it again.
		stop()
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("worker wrote %q: %v", line, err)
		}
		if raw["id"] != id || raw["root_id"] != id || raw["note"] != "é from go" || raw["sum"] != float64(5) ||
			!reflect.DeepEqual(raw["args"], []any{float64(2), float64(3)}) {
			t.Errorf("the Celery worker ran %s, want id %s, args [2 3], note %q, sum 5", line, id, "é from go")
		}

		// Celery -> Go: send_task from a Celery client.
		send := `
import json, os, sys
from celery import Celery
app = Celery('kgo-client', broker=sys.argv[1])
r = app.send_task('kgo.mul', args=[6, 7], kwargs={'k': 'v'}, queue=sys.argv[2])
print(json.dumps({'id': r.id}))
`
		cmd := exec.CommandContext(ctx, py, "-c", send, url, fromCelery.Name)
		cmd.Dir = dir
		res, err := cmd.Output()
		if err != nil {
			t.Fatalf("send_task: %v: %s", err, stderrOf(err))
		}
		var sent struct{ ID string }
		if err := json.Unmarshal(res, &sent); err != nil || sent.ID == "" {
			t.Fatalf("send_task printed %q: %v", res, err)
		}
		got := make(chan *messaging.Message, 1)
		c, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{fromCelery},
			OnMessage: func(m *messaging.Message) { got <- m }})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Consume(ctx); err != nil {
			t.Fatal(err)
		}
		for len(got) == 0 {
			if err := conn.DrainEvents(ctx); err != nil {
				t.Fatal(err)
			}
		}
		m := <-got
		if m.Headers["task"] != "kgo.mul" || m.Headers["id"] != sent.ID || m.Properties.CorrelationID != sent.ID ||
			m.Headers["root_id"] != sent.ID || m.Headers["lang"] != "py" || m.ContentType != "application/json" {
			t.Errorf("Celery's message: headers %v, correlation_id %q, content type %q (task id %s)",
				m.Headers, m.Properties.CorrelationID, m.ContentType, sent.ID)
		}
		payload, err := m.Decode()
		if err != nil {
			t.Fatal(err)
		}
		const want = `[[6,7],{"k":"v"},{"callbacks":null,"chain":null,"chord":null,"errbacks":null}]`
		if b, err := json.Marshal(payload); err != nil || string(b) != want {
			t.Errorf("Celery's body decoded to %s (%v), want %s", b, err, want)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
		if err := c.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// startCeleryWorker runs a solo-pool Celery worker of dir/kgoapp.py on
// queue. stop ends it (warm shutdown, then killed); it also runs when the
// test ends.
func startCeleryWorker(t *testing.T, py, dir, url, queue, out string) (exited <-chan struct{}, stop func()) {
	t.Helper()
	cmd := exec.Command(py, "-m", "celery", "-A", "kgoapp", "worker", "--pool=solo", "--concurrency=1",
		"--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=WARNING",
		"-Q", queue, "-n", "kgo-"+queue+"@%h")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KGO_BROKER="+url, "KGO_QUEUE="+queue, "KGO_OUT="+out)
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
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "worker.log")); err == nil {
				t.Logf("celery worker log:\n%s", b)
			}
		}
	})
	return done, stop
}

// waitForLine returns the first line written to path, waiting up to d
// unless the worker exits first.
func waitForLine(t *testing.T, path string, d time.Duration, exited <-chan struct{}) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			ok := sc.Scan()
			f.Close()
			if ok && strings.TrimSpace(sc.Text()) != "" {
				return sc.Text()
			}
		}
		select {
		case <-exited:
			t.Fatal("the Celery worker exited before running the task")
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("the Celery worker ran no task within %v", d)
	return ""
}

// stderrOf returns the standard error an *exec.ExitError captured.
func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
