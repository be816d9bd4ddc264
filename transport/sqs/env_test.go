package sqs

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// env is one integration test's connection: a transport with a
// queue_name_prefix of its own, a hub driven by a goroutine the test owns,
// and a connection.
type env struct {
	t      *testing.T
	url    string
	prefix string
	opts   map[string]any
	queues []string // deleted at the end, after the connections closed
	tr     *Transport
	h      *hub.Hub
	conn   *Conn
	ctx    context.Context
}

// newEnv connects to the emulator with testOpts plus extra. Everything is
// closed, and the queues deleted, when the test ends.
func newEnv(t *testing.T, extra map[string]any) *env {
	t.Helper()
	raw := sqsURL(t)
	e := &env{t: t, url: raw, prefix: uniq("t") + "-", ctx: context.Background()}
	e.opts = testOpts(extra)
	e.opts["queue_name_prefix"] = e.prefix
	cfg := configFromURL(t, raw, e.opts)
	if os.Getenv("KOMBU_TEST_SQS_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.tr = tr
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }() // joined in Cleanup
	t.Cleanup(func() {
		cancel()
		<-done
		h.Close()
	})
	// Wait until the goroutine drives the hub.
	for h.Call(context.Background(), func() {}) != nil {
		time.Sleep(time.Millisecond)
	}
	// Registered before any connection: runs after they are all closed
	// (their receivers joined), since goaws deadlocks when a queue is
	// deleted under a long poll (goaws_test.go).
	t.Cleanup(func() {
		for _, q := range e.queues {
			e.deleteQueue(q)
		}
	})
	e.conn = e.dial()
	return e
}

// dial opens another connection of the same transport, closed at the end.
func (e *env) dial() *Conn {
	e.t.Helper()
	c, err := e.tr.Dial(e.ctx, e.h)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

// channel opens a channel on conn (e.conn when nil) and declares queues.
func (e *env) channel(conn *Conn, queues ...string) *Channel {
	e.t.Helper()
	if conn == nil {
		conn = e.conn
	}
	ch, err := conn.Channel(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, q := range queues {
		if _, err := ch.DeclareQueue(e.ctx, transport.Queue{Name: q}); err != nil {
			e.t.Fatal(err)
		}
		e.queues = append(e.queues, q)
	}
	return ch.(*Channel)
}

// deleteQueue deletes a queue through a connection of its own.
func (e *env) deleteQueue(q string) {
	cl := newClient(&e.tr.o)
	defer cl.close()
	if u, err := cl.url(e.ctx, q, false); err == nil {
		cl.def.DeleteQueue(e.ctx, deleteInput(u))
	}
}

// collector gathers deliveries made on the hub goroutine.
type collector struct {
	mu   sync.Mutex
	msgs []*transport.Message
	more chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) fn(m *transport.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// wait returns once n messages arrived, or fails after d.
func (c *collector) wait(t *testing.T, n int, d time.Duration) []*transport.Message {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			out := append([]*transport.Message(nil), c.msgs...)
			c.mu.Unlock()
			return out
		}
		got := len(c.msgs)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("%d of %d messages within %v", got, n, d)
		}
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// python returns KOMBU_TEST_PYTHON, else /usr/bin/python3 when it imports
// kombu, boto3 and pycurl (Kombu's SQS transport needs both), or skips.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if exec.Command(py, "-c", "import kombu, boto3, pycurl").Run() != nil {
		transporttest.Require(t, "no Python with Kombu, boto3 and pycurl (apt-get install python3-kombu python3-boto3 python3-pycurl)")
	}
	return py
}
