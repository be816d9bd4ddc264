package celery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/messaging/serializer"
)

// Meta is a task's state as a result backend stores it (Celery's result
// meta: status, result, traceback, children, date_done, task_id).
type Meta struct {
	TaskID string
	Status State
	// Result is the return value (SUCCESS), or the exception dict
	// (FAILURE, RETRY, REVOKED: see TaskError).
	Result    any
	Traceback string
	Children  []any
	// DateDone is set for ready states.
	DateDone time.Time
}

// Err returns the task's error for FAILURE, REVOKED and RETRY states.
func (m Meta) Err() error {
	switch m.Status {
	case Failure, Revoked, Retry:
		return errorFromResult(m.Status, m.Result, m.Traceback)
	}
	return nil
}

// Backend stores and reads task results. The worker calls Store; clients
// call Get, Wait and Forget. [NewRedisBackend] and [NewRPCBackend] are
// Celery's redis:// and rpc:// backends. Implementations are safe for
// concurrent use.
type Backend interface {
	// Store records meta for t (the request carries what the RPC backend
	// needs: reply_to and correlation_id).
	Store(ctx context.Context, t *Task, meta Meta) error
	// Get returns the latest known state of the task: PENDING when none.
	Get(ctx context.Context, id string) (Meta, error)
	// Wait returns the task's state once it is ready (SUCCESS, FAILURE,
	// REVOKED), or ctx's error.
	Wait(ctx context.Context, id string) (Meta, error)
	// Forget drops the stored result.
	Forget(ctx context.Context, id string) error
	// Close releases the backend's connections.
	Close() error
}

// sender is implemented by backends that must prepare before a task is
// sent (the RPC backend declares its reply queue and returns its name for
// reply_to).
type sender interface {
	onSend(ctx context.Context, id string) (replyTo string, err error)
}

// BackendOptions configure a result backend.
type BackendOptions struct {
	// Expires is how long results are kept (Celery's result_expires):
	// SETEX on Redis, x-expires of the RPC reply queue. Default: 24 h.
	// Negative: no expiry.
	Expires time.Duration
	// Persistent sends RPC results as persistent messages (Celery's
	// result_persistent). Default: transient.
	Persistent bool
}

func (o *BackendOptions) defaults() {
	if o.Expires == 0 {
		o.Expires = 24 * time.Hour
	}
}

// OpenBackend opens the backend a URL names, as Celery's result_backend
// setting: "redis://..." (or "rediss://"), or "rpc://", which uses the
// broker at brokerURL. An empty URL is no backend (nil, nil).
func OpenBackend(url, brokerURL string, opts BackendOptions) (Backend, error) {
	switch {
	case url == "":
		return nil, nil
	case strings.HasPrefix(url, "redis://"), strings.HasPrefix(url, "rediss://"):
		return NewRedisBackend(url, opts)
	case strings.HasPrefix(url, "rpc://"):
		conn, err := messaging.NewConnection(brokerURL, messaging.Options{})
		if err != nil {
			return nil, err
		}
		b, err := NewRPCBackend(conn, opts)
		if err != nil {
			conn.Close()
			return nil, err
		}
		b.ownConn = true
		return b, nil
	}
	return nil, fmt.Errorf("celery: unsupported result backend %q (redis://, rpc://)", url)
}

// metaJSON is the stored form of Meta.
type metaJSON struct {
	Status    State  `json:"status"`
	Result    any    `json:"result"`
	Traceback any    `json:"traceback"`
	Children  []any  `json:"children"`
	DateDone  any    `json:"date_done"`
	TaskID    string `json:"task_id"`
}

// dateLayout is Python's naive datetime.isoformat() with microseconds,
// which Celery stores in date_done (UTC).
const dateLayout = "2006-01-02T15:04:05.000000"

func encodeMeta(m Meta) ([]byte, error) {
	j := metaJSON{Status: m.Status, Result: m.Result, Children: m.Children, TaskID: m.TaskID}
	if j.Children == nil {
		j.Children = []any{}
	}
	if m.Traceback != "" {
		j.Traceback = m.Traceback
	}
	if !m.DateDone.IsZero() {
		j.DateDone = m.DateDone.UTC().Format(dateLayout)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("celery: result is not JSON-serializable: %w", err)
	}
	return b, nil
}

// decodeMeta reads a stored meta (JSON), with Kombu's JSON decoder (ints
// stay ints).
func decodeMeta(b []byte) (Meta, error) {
	v, err := serializer.Default().Loads(b, "application/json", "utf-8", nil)
	if err != nil {
		return Meta{}, fmt.Errorf("celery: bad result meta: %w", err)
	}
	return metaFrom(v)
}

func metaFrom(v any) (Meta, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return Meta{}, fmt.Errorf("celery: result meta is %T, not a dict", v)
	}
	m := Meta{Result: d["result"]}
	s, _ := d["status"].(string)
	m.Status = State(s)
	m.TaskID, _ = d["task_id"].(string)
	m.Traceback, _ = d["traceback"].(string)
	m.Children, _ = d["children"].([]any)
	switch t := d["date_done"].(type) {
	case string:
		m.DateDone, _ = parseTime(t)
	case time.Time:
		m.DateDone = t
	}
	return m, nil
}

// RedisBackend is Celery's Redis result backend: each result is the JSON
// meta at celery-task-meta-<id>, written with SETEX (result_expires) and
// PUBLISHed on a channel of the same name, which waiting clients
// SUBSCRIBE to.
//
// Waits share one pub/sub connection (as Celery's ResultConsumer), read by
// one goroutine of the backend's from the first Wait until Close, which
// joins it.
type RedisBackend struct {
	rdb  *redis.Client
	opts BackendOptions

	mu      sync.Mutex
	closed  bool
	ps      *redis.PubSub
	done    chan struct{} // closed when the reader returns
	waiters map[string]map[*redisWaiter]struct{}
	// subscribed holds the channels whose subscription Redis confirmed.
	subscribed map[string]bool
}

// redisWaiter is one Wait: told when its channel's subscription is
// confirmed and when a result is published on it.
type redisWaiter struct {
	subscribed chan struct{}
	once       sync.Once
	payload    chan string // the latest publication; capacity 1
}

func (w *redisWaiter) confirm() { w.once.Do(func() { close(w.subscribed) }) }

// KeyPrefix is the Redis key prefix of task results.
const KeyPrefix = "celery-task-meta-"

// NewRedisBackend connects (lazily) to the Redis at url.
func NewRedisBackend(url string, opts BackendOptions) (*RedisBackend, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("celery: redis backend: %w", err)
	}
	opts.defaults()
	return &RedisBackend{rdb: redis.NewClient(ro), opts: opts, waiters: map[string]map[*redisWaiter]struct{}{},
		subscribed: map[string]bool{}}, nil
}

// Store writes the meta and publishes it. As Celery, it leaves a SUCCESS
// already stored in place (a redelivered task must not overwrite it).
func (b *RedisBackend) Store(ctx context.Context, t *Task, meta Meta) error {
	key := KeyPrefix + meta.TaskID
	if cur, err := b.Get(ctx, meta.TaskID); err == nil && cur.Status == Success {
		return nil
	}
	val, err := encodeMeta(meta)
	if err != nil {
		return err
	}
	_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if b.opts.Expires > 0 {
			p.SetEx(ctx, key, val, b.opts.Expires.Truncate(time.Second))
		} else {
			p.Set(ctx, key, val, 0)
		}
		p.Publish(ctx, key, val)
		return nil
	})
	if err != nil {
		return fmt.Errorf("celery: store result: %w", err)
	}
	return nil
}

// Get reads the stored meta; PENDING when there is none.
func (b *RedisBackend) Get(ctx context.Context, id string) (Meta, error) {
	val, err := b.rdb.Get(ctx, KeyPrefix+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Meta{TaskID: id, Status: Pending}, nil
	}
	if err != nil {
		return Meta{}, fmt.Errorf("celery: get result: %w", err)
	}
	return decodeMeta(val)
}

// pollEvery bounds a Wait's sleep between two reads of the key: a safety
// net for a publication missed across a reconnection of the pub/sub
// connection.
const pollEvery = time.Second

// Wait subscribes to the result's channel, reads the key once the
// subscription is confirmed, and waits for a ready state.
func (b *RedisBackend) Wait(ctx context.Context, id string) (Meta, error) {
	key := KeyPrefix + id
	w, err := b.join(ctx, key)
	if err != nil {
		return Meta{}, err
	}
	defer b.leave(key, w)
	select {
	case <-w.subscribed:
	case <-time.After(pollEvery):
	case <-ctx.Done():
		return Meta{}, ctx.Err()
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		m, err := b.Get(ctx, id)
		if err != nil || m.Status.Ready() {
			return m, err
		}
		select {
		case p := <-w.payload:
			if m, err := decodeMeta([]byte(p)); err == nil && m.Status.Ready() {
				return m, nil
			}
		case <-tick.C:
		case <-ctx.Done():
			return Meta{}, ctx.Err()
		}
	}
}

// join registers a waiter on key, subscribing (and starting the reader) as
// needed.
func (b *RedisBackend) join(ctx context.Context, key string) (*redisWaiter, error) {
	w := &redisWaiter{subscribed: make(chan struct{}), payload: make(chan string, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.ps == nil {
		b.ps = b.rdb.Subscribe(ctx)
		b.done = make(chan struct{})
		go b.read(b.ps, b.done) // joined by Close
	}
	ws := b.waiters[key]
	first := ws == nil
	if first {
		ws = map[*redisWaiter]struct{}{}
		b.waiters[key] = ws
	}
	ws[w] = struct{}{}
	if b.subscribed[key] {
		w.confirm()
	}
	ps := b.ps
	b.mu.Unlock()
	if first {
		if err := ps.Subscribe(ctx, key); err != nil {
			b.leave(key, w)
			return nil, fmt.Errorf("celery: subscribe: %w", err)
		}
	}
	return w, nil
}

// leave unregisters a waiter, unsubscribing when it was the last of its
// key.
func (b *RedisBackend) leave(key string, w *redisWaiter) {
	b.mu.Lock()
	ws := b.waiters[key]
	delete(ws, w)
	last := len(ws) == 0
	if last {
		delete(b.waiters, key)
	}
	ps, closed := b.ps, b.closed
	b.mu.Unlock()
	if last && !closed {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		ps.Unsubscribe(ctx, key)
		cancel()
	}
}

// read dispatches the pub/sub connection's messages until it is closed.
// go-redis reconnects and resubscribes by itself after an error.
func (b *RedisBackend) read(ps *redis.PubSub, done chan struct{}) {
	defer close(done)
	for {
		msg, err := ps.Receive(context.Background())
		if err != nil {
			b.mu.Lock()
			closed := b.closed
			clear(b.subscribed)
			b.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b.mu.Lock()
		switch m := msg.(type) {
		case *redis.Subscription:
			b.subscribed[m.Channel] = m.Kind == "subscribe"
			if m.Kind == "subscribe" {
				for w := range b.waiters[m.Channel] {
					w.confirm()
				}
			}
		case *redis.Message:
			for w := range b.waiters[m.Channel] {
				select { // keep the latest
				case <-w.payload:
				default:
				}
				w.payload <- m.Payload
			}
		}
		b.mu.Unlock()
	}
}

// Forget deletes the stored result.
func (b *RedisBackend) Forget(ctx context.Context, id string) error {
	return b.rdb.Del(ctx, KeyPrefix+id).Err()
}

// Close closes the pub/sub connection, joins its reader, and closes the
// Redis client.
func (b *RedisBackend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ps, done := b.ps, b.done
	b.mu.Unlock()
	if ps != nil {
		ps.Close()
		<-done
	}
	return b.rdb.Close()
}
