package transporttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// PriorityOrder says in which order a transport serves priorities.
type PriorityOrder int

const (
	// NoPriorities: priority does not change the delivery order.
	NoPriorities PriorityOrder = iota
	// LowerFirst: a lower number is served first (Kombu's Redis transport,
	// where 0 is the most urgent; priorities are bucketed by 0/3/6/9).
	LowerFirst
	// HigherFirst: a higher number is served first (AMQP with
	// x-max-priority).
	HigherFirst
)

// Features describe what a transport does, so that the suite tests each
// transport for what it promises. They are the executable form of the
// transport matrix.
type Features struct {
	// Topic: the transport routes topic exchanges.
	Topic bool
	// TopicKombu: topic matching follows Kombu's regular expressions ("*"
	// may match several words, "a.#" does not match "a") instead of AMQP's.
	TopicKombu bool
	// Fanout: the transport routes fanout exchanges.
	Fanout bool
	// FanoutPubSub: fanout reaches live consumers only, at most once
	// (Kombu's Redis PUB/SUB), instead of storing a copy in every bound
	// queue.
	FanoutPubSub bool
	// Headers: the transport routes headers exchanges (x-match all/any).
	Headers bool
	// NotEquivalent: redeclaring an exchange with another type fails with
	// transport.ErrNotEquivalent.
	NotEquivalent bool
	// RestoreOnClose: closing a channel gives its unacknowledged messages
	// back to their queues.
	RestoreOnClose bool
	// RedeliveredFlag: a requeued or restored message arrives with
	// DeliveryInfo.Redelivered set.
	RedeliveredFlag bool
	// Priorities: the order in which priorities are served. Queues of the
	// priority test are declared with x-max-priority 10.
	Priorities PriorityOrder
	// Returns: mandatory messages that no queue takes come back through
	// transport.Returner.
	Returns bool
	// Timestamp: Properties.Timestamp round-trips (to the second).
	Timestamp bool
	// Timeout bounds each wait for a delivery; a test fails when it passes.
	// It is not a measure: generous values only make failures slower.
	// Default: 10s.
	Timeout time.Duration
}

// Opener connects to the transport under test, on hub h. The suite closes
// the connection.
type Opener func(t *testing.T, h *hub.Hub) transport.Conn

// Run runs the conformance suite. Every test gets its own hub, run on a
// goroutine the suite owns and joins, its own connection, and names of its
// own (a random prefix), and deletes the queues it declared.
func Run(t *testing.T, f Features, open Opener) {
	if f.Timeout <= 0 {
		f.Timeout = 10 * time.Second
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.need != nil {
				if why := tc.need(f); why != "" {
					t.Skip(why)
				}
			}
			e := newEnv(t, f, open)
			tc.run(e)
		})
	}
}

type testCase struct {
	name string
	// need returns why the case does not apply to f, or "".
	need func(f Features) string
	run  func(e *env)
}

// env is one test's hub, connection and bookkeeping.
type env struct {
	t      *testing.T
	f      Features
	h      *hub.Hub
	conn   transport.Conn
	ctx    context.Context
	prefix string

	mu     sync.Mutex
	queues []string
	exs    []string
}

func newEnv(t *testing.T, f Features, open Opener) *env {
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	// Wait until that goroutine drives the hub: otherwise a hub.Call made by
	// the test could drive it first and Run would fail with ErrRunning.
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	e := &env{t: t, f: f, h: h, ctx: ctx, prefix: "kt-" + randHex(6) + "-"}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub.Run: %v", err)
		}
		h.Close()
	})
	e.conn = open(t, h)
	t.Cleanup(func() {
		e.cleanup()
		if err := e.conn.Close(); err != nil {
			t.Errorf("Conn.Close: %v", err)
		}
	})
	return e
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// name returns a unique name for this test.
func (e *env) name(s string) string { return e.prefix + s }

// cleanup deletes what the test declared.
func (e *env) cleanup() {
	ch, err := e.conn.Channel(context.Background())
	if err != nil {
		return
	}
	defer ch.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, q := range e.queues {
		ch.DeleteQueue(context.Background(), q, false, false)
	}
	for _, x := range e.exs {
		ch.DeleteExchange(context.Background(), x, false)
	}
}

// channel opens a channel that the test closes at its end.
func (e *env) channel() transport.Channel {
	e.t.Helper()
	ch, err := e.conn.Channel(e.ctx)
	if err != nil {
		e.t.Fatalf("Conn.Channel: %v", err)
	}
	e.t.Cleanup(func() { ch.Close() })
	return ch
}

// queue declares a queue named e.name(s) and returns its name.
func (e *env) queue(ch transport.Channel, s string, args map[string]any) string {
	e.t.Helper()
	name := e.name(s)
	if _, err := ch.DeclareQueue(e.ctx, transport.Queue{Name: name, Arguments: args}); err != nil {
		e.t.Fatalf("DeclareQueue(%s): %v", name, err)
	}
	e.mu.Lock()
	e.queues = append(e.queues, name)
	e.mu.Unlock()
	return name
}

// exchange declares an exchange named e.name(s) of type typ.
func (e *env) exchange(ch transport.Channel, s, typ string) string {
	e.t.Helper()
	name := e.name(s)
	if err := ch.DeclareExchange(e.ctx, transport.Exchange{Name: name, Type: typ}); err != nil {
		e.t.Fatalf("DeclareExchange(%s, %s): %v", name, typ, err)
	}
	e.mu.Lock()
	e.exs = append(e.exs, name)
	e.mu.Unlock()
	return name
}

func (e *env) bind(ch transport.Channel, queue, exchange, key string, args map[string]any) {
	e.t.Helper()
	b := transport.Binding{Queue: queue, Exchange: exchange, RoutingKey: key, Arguments: args}
	if err := ch.BindQueue(e.ctx, b); err != nil {
		e.t.Fatalf("BindQueue(%+v): %v", b, err)
	}
}

func (e *env) publish(ch transport.Channel, exchange, key string, m *transport.Message) {
	e.t.Helper()
	if err := ch.Publish(e.ctx, m, exchange, key, transport.PublishOptions{}); err != nil {
		e.t.Fatalf("Publish(%q, %q): %v", exchange, key, err)
	}
}

func text(s string) *transport.Message {
	return &transport.Message{Body: []byte(s), ContentType: "text/plain", ContentEncoding: "utf-8"}
}

// receiver collects the deliveries of a consumer.
type receiver struct {
	e   *env
	tag string
	c   chan *transport.Message
}

// consume starts a consumer whose deliveries the test reads with next.
func (e *env) consume(ch transport.Channel, queue string, noAck bool) *receiver {
	e.t.Helper()
	r := &receiver{e: e, c: make(chan *transport.Message, 4096)}
	tag, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: queue, NoAck: noAck}, func(m *transport.Message) {
		select {
		case r.c <- m:
		default:
			e.t.Errorf("consumer of %s: more than %d deliveries unread", queue, cap(r.c))
		}
	})
	if err != nil {
		e.t.Fatalf("Consume(%s): %v", queue, err)
	}
	r.tag = tag
	return r
}

// next waits for the next delivery; it fails the test after f.Timeout.
func (r *receiver) next() *transport.Message {
	r.e.t.Helper()
	select {
	case m := <-r.c:
		return m
	case <-time.After(r.e.f.Timeout):
		r.e.t.Fatalf("no delivery within %v", r.e.f.Timeout)
		return nil
	}
}

// none asserts that nothing was delivered so far. It first lets the hub
// finish the work already posted to it, so that a delivery the transport
// decided on is seen.
func (r *receiver) none() {
	r.e.t.Helper()
	r.e.barrier()
	select {
	case m := <-r.c:
		r.e.t.Fatalf("unexpected delivery %q", m.Body)
	default:
	}
}

// barrier waits until the hub has run everything posted before it.
func (e *env) barrier() {
	e.t.Helper()
	for range 3 {
		ctx, cancel := context.WithTimeout(e.ctx, e.f.Timeout)
		err := e.h.Call(ctx, func() {})
		cancel()
		if err != nil {
			e.t.Fatalf("hub.Call: %v", err)
		}
	}
}

// get takes one message with Get, retrying until f.Timeout for transports
// where a message is in flight for a while (a requeue, a restore).
func (e *env) get(ch transport.Channel, queue string, noAck bool) *transport.Message {
	e.t.Helper()
	deadline := time.Now().Add(e.f.Timeout)
	for {
		m, err := ch.Get(e.ctx, queue, noAck)
		if err == nil {
			return m
		}
		if !errors.Is(err, transport.ErrEmpty) {
			e.t.Fatalf("Get(%s): %v", queue, err)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("Get(%s): still empty after %v", queue, e.f.Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSize waits until a passive declaration reports n ready messages in
// queue (a broker may store a publish after Publish returned).
func (e *env) waitSize(ch transport.Channel, queue string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(e.f.Timeout)
	for {
		info, err := ch.DeclareQueue(e.ctx, transport.Queue{Name: queue, Passive: true})
		if err == nil && info.Messages == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("queue %s: want %d messages, have %+v (%v)", queue, n, info, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// empty asserts that Get finds nothing in queue.
func (e *env) empty(ch transport.Channel, queue string) {
	e.t.Helper()
	e.barrier()
	m, err := ch.Get(e.ctx, queue, true)
	if err == nil {
		e.t.Fatalf("Get(%s): want empty, got %q", queue, m.Body)
	}
	if !errors.Is(err, transport.ErrEmpty) {
		e.t.Fatalf("Get(%s): want ErrEmpty, got %v", queue, err)
	}
}
