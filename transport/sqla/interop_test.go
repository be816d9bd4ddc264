package sqla

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// python returns the interpreter with Kombu, SQLAlchemy and both database
// drivers (KOMBU_TEST_PYTHON, else /usr/bin/python3 when it has them), or
// skips.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if err := exec.Command(py, "-c", "import kombu, sqlalchemy, psycopg2, pymysql").Run(); err != nil {
		transporttest.Require(t, "no Python with Kombu, SQLAlchemy, psycopg2 and PyMySQL (%s: %v): apt-get install python3-kombu python3-sqlalchemy python3-psycopg2 python3-pymysql", py, err)
	}
	return py
}

// pyURL is the URL Python Kombu needs for the same database: PyMySQL
// (Debian has no MySQLdb by default) for MySQL.
func pyURL(raw string) string {
	if strings.HasPrefix(raw, "sqla+mysql://") {
		return "sqla+mysql+pymysql://" + strings.TrimPrefix(raw, "sqla+mysql://")
	}
	return raw
}

type pyMsg struct {
	Payload     map[string]any `json:"payload"`
	Headers     map[string]any `json:"headers"`
	ContentType string         `json:"content_type"`
	Redelivered bool           `json:"redelivered"`
	DeliveryTag string         `json:"delivery_tag"`
}

// peer runs the Python peer and returns its output lines ("empty" for a
// get that timed out).
func peer(t *testing.T, raw string, tr *Transport, mode, queue string, n int, timeout float64) []string {
	t.Helper()
	opts, _ := json.Marshal(map[string]any{"queue_tablename": tr.o.QueueTable, "message_tablename": tr.o.MessageTable})
	cmd := exec.Command(python(t), "testdata/kombu_sqla_peer.py", mode, pyURL(raw), string(opts), queue,
		fmt.Sprint(n), fmt.Sprint(timeout))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %s: %v\n%s", mode, err, stderr.String())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func parsePy(t *testing.T, line string) pyMsg {
	t.Helper()
	var m pyMsg
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("python output %q: %v", line, err)
	}
	return m
}

// runHub drives a hub for the test on a goroutine the test joins.
func runHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub.Run: %v", err)
		}
		h.Close()
	})
	return h
}

// dial connects tr on h; the connection is closed when the test ends.
func dial(t *testing.T, tr *Transport, h *hub.Hub) (*Conn, transport.Channel) {
	t.Helper()
	c, err := tr.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Conn), ch
}

// fixture is a test's transport (tables of its own), hub, connection,
// channel and queue (declared).
type fixture struct {
	tr *Transport
	c  *Conn
	ch transport.Channel
	q  string
}

func newFixture(t *testing.T, raw, prefix string, extra map[string]any) fixture {
	t.Helper()
	tr := newTransport(t, raw, extra)
	c, ch := dial(t, tr, runHub(t))
	q := uniq(prefix)
	if _, err := ch.DeclareQueue(context.Background(), transport.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	return fixture{tr, c, ch, q}
}

// collect consumes queue on ch and returns a channel of its deliveries.
func collect(t *testing.T, ch transport.Channel, queue string, noAck bool) <-chan *transport.Message {
	t.Helper()
	got := make(chan *transport.Message, 1000)
	if _, err := ch.Consume(context.Background(), transport.ConsumeOptions{Queue: queue, NoAck: noAck},
		func(m *transport.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	return got
}

func next(t *testing.T, got <-chan *transport.Message, d time.Duration) *transport.Message {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(d):
		t.Fatalf("no delivery within %v", d)
	}
	return nil
}

func jsonMsg(v any) *transport.Message {
	b, _ := json.Marshal(v)
	return &transport.Message{Body: b, ContentType: "application/json", ContentEncoding: "utf-8"}
}

// TestInteropPythonToGo: messages Python Kombu publishes are consumed by
// a Go consumer, in order, with their headers; acked rows are deleted.
func TestInteropPythonToGo(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		f := newFixture(t, raw, "py2go-", nil)
		tr, c, ch, q := f.tr, f.c, f.ch, f.q
		got := collect(t, ch, q, false)
		const n = 20
		if out := peer(t, raw, tr, "publish", q, n, 0); len(out) != 1 || out[0] != "ok" {
			t.Fatalf("python publish: %q", out)
		}
		for i := range n {
			m := next(t, got, 10*time.Second)
			if m.Err != nil {
				t.Fatalf("message %d: %v", i, m.Err)
			}
			var body map[string]any
			if err := json.Unmarshal(m.Body, &body); err != nil {
				t.Fatalf("body %q: %v", m.Body, err)
			}
			if body["i"] != float64(i) || body["from"] != "python" || m.ContentType != "application/json" {
				t.Fatalf("message %d: body %v, content type %q", i, body, m.ContentType)
			}
			if fmt.Sprint(m.Headers["h"]) != fmt.Sprint(i) {
				t.Fatalf("message %d: headers %v", i, m.Headers)
			}
			if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
				t.Fatal(err)
			}
		}
		waitRows(t, c, q, 0, 0)
	})
}

// waitRows waits until the queue has ready visible and invisible rows.
func waitRows(t *testing.T, c *Conn, queue string, ready, invisible int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last QueueStat
	for time.Now().Before(deadline) {
		qs, err := c.Queues(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = QueueStat{Name: queue}
		for _, s := range qs {
			if s.Name == queue {
				last = s
			}
		}
		if last.Ready == ready && last.Invisible == invisible {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("queue %s: %d ready, %d invisible rows; want %d and %d", queue, last.Ready, last.Invisible, ready, invisible)
}

// TestInteropGoToPython: messages a Go producer publishes are consumed by
// Python Kombu, in order, with their headers and content type.
func TestInteropGoToPython(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		f := newFixture(t, raw, "go2py-", nil)
		tr, ch, q := f.tr, f.ch, f.q
		ctx := context.Background()
		const n = 20
		for i := range n {
			m := jsonMsg(map[string]any{"i": i, "from": "go"})
			m.Headers = map[string]any{"h": int64(i)}
			if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		out := peer(t, raw, tr, "consume", q, n+1, 1)
		if len(out) != n+1 || out[n] != "empty" {
			t.Fatalf("python consumed %d lines, want %d messages then empty: %q", len(out), n, out)
		}
		for i, line := range out[:n] {
			m := parsePy(t, line)
			if m.Payload["i"] != float64(i) || m.Payload["from"] != "go" || m.ContentType != "application/json" ||
				m.Headers["h"] != float64(i) || m.Redelivered {
				t.Fatalf("python got %d: %+v", i, m)
			}
		}
	})
}

// TestInteropVisibility: a row claimed by one side is invisible to the
// other until it is given back; a message Go restores reaches Python
// marked redelivered; a Python consumer that dies holding a message leaves
// its row invisible (Kombu never restores it), and Go does not take it.
func TestInteropVisibility(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		f := newFixture(t, raw, "vis-", nil)
		tr, c, ch, q := f.tr, f.c, f.ch, f.q
		ctx := context.Background()
		for i := range 2 {
			if err := ch.Publish(ctx, jsonMsg(map[string]any{"i": i}), "", q, transport.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		first, err := ch.Get(ctx, q, false)
		if err != nil {
			t.Fatal(err)
		}
		// Python sees only the second message.
		out := peer(t, raw, tr, "consume", q, 2, 1)
		if len(out) != 2 || out[1] != "empty" || parsePy(t, out[0]).Payload["i"] != float64(1) {
			t.Fatalf("python while Go holds message 0: %q", out)
		}
		// Go gives the first back: Python gets it, redelivered.
		if err := ch.Reject(first.DeliveryInfo.DeliveryTag, true); err != nil {
			t.Fatal(err)
		}
		// Message 1 stays as an invisible row: Python Kombu's ack deletes
		// nothing.
		waitRows(t, c, q, 1, 1)
		out = peer(t, raw, tr, "consume", q, 1, 5)
		if m := parsePy(t, out[0]); m.Payload["i"] != float64(0) || !m.Redelivered {
			t.Fatalf("python after Go's requeue: %+v", m)
		}
		// A Python consumer killed while holding a message: its row stays
		// invisible, and nobody gets it.
		if err := ch.Publish(ctx, jsonMsg(map[string]any{"i": 2}), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if out := peer(t, raw, tr, "grab", q, 1, 5); len(out) != 1 || parsePy(t, out[0]).Payload["i"] != float64(2) {
			t.Fatalf("python grab: %q", out)
		}
		waitRows(t, c, q, 0, 3) // two acked by Python, one held by the dead consumer
		if _, err := ch.Get(ctx, q, false); !errors.Is(err, transport.ErrEmpty) {
			t.Fatalf("Go Get after Python died holding the only message: %v, want ErrEmpty", err)
		}
	})
}

// TestInteropPythonMadeTables: tables that Python Kombu created
// (SQLAlchemy's create_all, before any Go process dialled) are used as
// they are: Go finds how their ids are made, adds its index, trigger and
// lease column, and messages go both ways.
func TestInteropPythonMadeTables(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		tr := newTransport(t, raw, nil) // New only: no table exists yet
		q := uniq("pyfirst-")
		if out := peer(t, raw, tr, "publish", q, 3, 0); len(out) != 1 || out[0] != "ok" {
			t.Fatalf("python publish: %q", out)
		}
		h := runHub(t)
		c, ch := dial(t, tr, h)
		if c.db.info.queueID == "" || c.db.info.messageID == "" {
			t.Fatalf("Python's tables take ids from Kombu's sequences; Go found %+v", c.db.info)
		}
		ctx := context.Background()
		for i := range 3 {
			m, err := ch.Get(ctx, q, false)
			if err != nil {
				t.Fatalf("Get %d: %v", i, err)
			}
			var body map[string]any
			if err := json.Unmarshal(m.Body, &body); err != nil || body["i"] != float64(i) {
				t.Fatalf("message %d: %q (%v)", i, m.Body, err)
			}
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}
		if err := ch.Publish(ctx, jsonMsg(map[string]any{"i": 9, "from": "go"}), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		out := peer(t, raw, tr, "consume", q, 1, 10)
		if m := parsePy(t, out[0]); m.Payload["from"] != "go" {
			t.Fatalf("python got %+v", m)
		}
	})
}

// TestLongQueueName: a queue name longer than Kombu's VARCHAR(200) is an
// error from the database, not a silently truncated queue.
func TestLongQueueName(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		_, ch := dial(t, newTransport(t, raw, nil), runHub(t))
		_, err := ch.DeclareQueue(context.Background(), transport.Queue{Name: strings.Repeat("q", 201)})
		if err == nil {
			t.Fatal("a 201-character queue name was accepted")
		}
		t.Logf("%v", err)
	})
}

// TestLargeMessage: a 100 KiB body round-trips on PostgreSQL (TEXT has no
// limit); on MySQL, where Kombu's payload column is TEXT (64 KiB), the
// publish fails with the database's error instead of storing a truncated
// envelope.
func TestLargeMessage(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		f := newFixture(t, raw, "large-", nil)
		tr, ch, q := f.tr, f.ch, f.q
		ctx := context.Background()
		body := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
		err := ch.Publish(ctx, &transport.Message{Body: body, ContentType: "application/octet-stream"}, "", q, transport.PublishOptions{})
		if tr.o.Dialect == MySQL {
			if err == nil {
				t.Fatal("a 100 KiB message was accepted into a TEXT column")
			}
			t.Logf("%v", err)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		m, err := ch.Get(ctx, q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Body, body) {
			t.Fatalf("body of %d bytes came back as %d bytes", len(body), len(m.Body))
		}
	})
}
