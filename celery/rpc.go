package celery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// RPCBackend is Celery's rpc:// result backend: the worker publishes each
// state as a message to the client's reply queue (the task's reply_to,
// through the default exchange, correlation_id = task id); the client
// consumes its reply queue (non-durable, auto-delete, x-expires =
// result_expires) and keeps the latest state per task.
//
// On the client side it runs the connection's hub on a goroutine of its
// own from the first task sent until Close, which joins it. It keeps the
// latest state received for each task until Forget (as Celery's pending
// results): forget the results you have read in a long-lived client.
type RPCBackend struct {
	conn    *messaging.Connection
	ownConn bool
	opts    BackendOptions
	prod    *messaging.Producer

	mu       sync.Mutex
	closed   bool
	queue    messaging.Queue
	consumer *messaging.Consumer
	cancel   context.CancelFunc
	hubDone  chan struct{}
	states   map[string]Meta
	changed  map[string]chan struct{}
}

// NewRPCBackend returns an RPC backend on conn, which it does not close.
func NewRPCBackend(conn *messaging.Connection, opts BackendOptions) (*RPCBackend, error) {
	opts.defaults()
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		return nil, err
	}
	return &RPCBackend{conn: conn, opts: opts, prod: p, states: map[string]Meta{},
		changed: map[string]chan struct{}{}}, nil
}

// Store publishes the meta to the task's reply_to queue; without reply_to
// there is nobody to tell, and nothing is sent.
func (b *RPCBackend) Store(ctx context.Context, t *Task, meta Meta) error {
	if t == nil || t.ReplyTo == "" {
		return nil
	}
	mode := messaging.Transient
	if b.opts.Persistent {
		mode = messaging.Persistent
	}
	cid := t.CorrelationID
	if cid == "" {
		cid = t.ID
	}
	body := map[string]any{"task_id": meta.TaskID, "status": meta.Status, "result": meta.Result,
		"traceback": nilIfEmpty(meta.Traceback), "children": orEmpty(meta.Children)}
	err := b.prod.Publish(ctx, body, messaging.PublishOptions{Exchange: &messaging.Exchange{}, RoutingKey: t.ReplyTo,
		CorrelationID: cid, DeliveryMode: mode})
	if err != nil {
		return fmt.Errorf("celery: rpc result: %w", err)
	}
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orEmpty(c []any) []any {
	if c == nil {
		return []any{}
	}
	return c
}

// onSend declares the reply queue and starts consuming it (once), and
// returns its name for the task's reply_to.
func (b *RPCBackend) onSend(ctx context.Context, _ string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", ErrClosed
	}
	if b.consumer != nil {
		return b.queue.Name, nil
	}
	name := messaging.NewUUID()
	q := messaging.Queue{Name: name, RoutingKey: name, AutoDelete: true}
	if b.opts.Expires > 0 {
		q.Expires = b.opts.Expires
	}
	c, err := messaging.NewConsumer(b.conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q}, NoAck: true,
		Callbacks: []messaging.Callback{b.receive}})
	if err != nil {
		return "", err
	}
	if err := c.Consume(ctx); err != nil {
		c.Close()
		return "", fmt.Errorf("celery: rpc reply queue: %w", err)
	}
	h, err := b.conn.Hub()
	if err != nil {
		c.Close()
		return "", err
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // joined by Close
		defer close(done)
		h.Run(rctx)
	}()
	b.queue, b.consumer, b.cancel, b.hubDone = q, c, cancel, done
	return name, nil
}

// receive runs on the hub: it records a state and wakes its waiters.
func (b *RPCBackend) receive(body any, m *messaging.Message) {
	meta, err := metaFrom(body)
	if err != nil {
		return // not a result: no_ack, nothing to settle
	}
	id := m.Properties.CorrelationID
	if id == "" {
		id = meta.TaskID
	}
	b.mu.Lock()
	if cur, ok := b.states[id]; !ok || !cur.Status.Ready() {
		b.states[id] = meta
	}
	if ch, ok := b.changed[id]; ok {
		close(ch)
		delete(b.changed, id)
	}
	b.mu.Unlock()
}

// Get returns the latest state received for id: PENDING when none.
func (b *RPCBackend) Get(_ context.Context, id string) (Meta, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.states[id]; ok {
		return m, nil
	}
	return Meta{TaskID: id, Status: Pending}, nil
}

// Wait waits for a ready state of id to arrive on the reply queue.
func (b *RPCBackend) Wait(ctx context.Context, id string) (Meta, error) {
	for {
		b.mu.Lock()
		if m, ok := b.states[id]; ok && m.Status.Ready() {
			b.mu.Unlock()
			return m, nil
		}
		if b.closed {
			b.mu.Unlock()
			return Meta{}, ErrClosed
		}
		ch, ok := b.changed[id]
		if !ok {
			ch = make(chan struct{})
			b.changed[id] = ch
		}
		done := b.hubDone
		b.mu.Unlock()
		select {
		case <-ch:
		case <-done: // nil (blocks) until a task was sent
			return Meta{}, ErrClosed
		case <-ctx.Done():
			return Meta{}, ctx.Err()
		}
	}
}

// Forget drops what was received for id.
func (b *RPCBackend) Forget(_ context.Context, id string) error {
	b.mu.Lock()
	delete(b.states, id)
	b.mu.Unlock()
	return nil
}

// Close stops consuming the reply queue, joins the hub goroutine, and
// closes the connection if the backend opened it (OpenBackend).
func (b *RPCBackend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	c, cancel, done := b.consumer, b.cancel, b.hubDone
	for id, ch := range b.changed {
		close(ch)
		delete(b.changed, id)
	}
	b.mu.Unlock()
	var err error
	if c != nil {
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		c.Cancel(ctx)
		stop()
		err = c.Close()
		cancel()
		<-done
	}
	if b.ownConn {
		if cerr := b.conn.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
