package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kombu-go/kombu/transport"
)

// DefaultPoolLimit is the limit of pools that set none (Kombu's
// kombu.pools default limit).
const DefaultPoolLimit = 10

// PoolOptions configure a ConnectionPool or ChannelPool.
type PoolOptions struct {
	// Limit is the most items in use at once. Default (0):
	// DefaultPoolLimit (10). Negative: no limit; released items are then
	// closed instead of kept (as in Kombu's Resource without a limit).
	Limit int
}

func (o PoolOptions) limit() int {
	switch {
	case o.Limit == 0:
		return DefaultPoolLimit
	case o.Limit < 0:
		return 0
	}
	return o.Limit
}

// resourcePool is Kombu's Resource: idle items kept last-in first-out,
// the items in use, and a limit. Acquire waits for a free slot with a
// context; TryAcquire fails with LimitExceeded. Safe for concurrent use.
type resourcePool[T comparable] struct {
	resource string
	limit    int           // 0: none
	slots    chan struct{} // one token per item in use, when limited
	create   func(ctx context.Context) (T, error)
	destroy  func(T) error
	reusable func(T) bool // whether a released item may go back to idle

	mu     sync.Mutex
	idle   []T
	inUse  map[T]struct{}
	closed bool
}

func newResourcePool[T comparable](resource string, limit int, create func(context.Context) (T, error),
	destroy func(T) error, reusable func(T) bool) *resourcePool[T] {
	p := &resourcePool[T]{resource: resource, limit: limit, create: create, destroy: destroy,
		reusable: reusable, inUse: map[T]struct{}{}}
	if limit > 0 {
		p.slots = make(chan struct{}, limit)
	}
	return p
}

// acquire takes a slot (waiting unless nowait) and an item.
func (p *resourcePool[T]) acquire(ctx context.Context, nowait bool) (T, error) {
	var zero T
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return zero, ErrClosed
	}
	if p.slots != nil {
		if nowait {
			select {
			case p.slots <- struct{}{}:
			default:
				return zero, &LimitExceededError{Resource: p.resource, Limit: p.limit}
			}
		} else {
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return zero, fmt.Errorf("messaging: waiting for a %s from the pool: %w", p.resource, ctx.Err())
			}
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.freeSlot()
		return zero, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		item := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.inUse[item] = struct{}{}
		p.mu.Unlock()
		return item, nil
	}
	p.mu.Unlock()
	item, err := p.create(ctx)
	if err != nil {
		p.freeSlot()
		return zero, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.freeSlot()
		_ = p.destroy(item)
		return zero, ErrClosed
	}
	p.inUse[item] = struct{}{}
	p.mu.Unlock()
	return item, nil
}

func (p *resourcePool[T]) freeSlot() {
	if p.slots != nil {
		<-p.slots
	}
}

// take removes item from the in-use set and frees its slot.
func (p *resourcePool[T]) take(item T) (closed bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inUse[item]; !ok {
		return p.closed, fmt.Errorf("messaging: this %s was not acquired from the pool", p.resource)
	}
	delete(p.inUse, item)
	p.freeSlot()
	return p.closed, nil
}

// release puts item back (or closes it when the pool has no limit, is
// closed, or the item cannot be reused).
func (p *resourcePool[T]) release(item T) error {
	p.mu.Lock()
	if _, ok := p.inUse[item]; !ok {
		p.mu.Unlock()
		return fmt.Errorf("messaging: this %s was not acquired from the pool", p.resource)
	}
	delete(p.inUse, item)
	keep := !p.closed && p.limit > 0 && p.reusable(item)
	if keep {
		p.idle = append(p.idle, item)
	}
	p.freeSlot()
	p.mu.Unlock()
	if !keep {
		return p.destroy(item)
	}
	return nil
}

// replace closes item and frees its slot (Kombu's replace).
func (p *resourcePool[T]) replace(item T) error {
	if _, err := p.take(item); err != nil {
		return err
	}
	return p.destroy(item)
}

// close closes the idle items; items in use are closed when released.
// Idempotent.
func (p *resourcePool[T]) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var errs []error
	for _, it := range idle {
		errs = append(errs, p.destroy(it))
	}
	return errors.Join(errs...)
}

func (p *resourcePool[T]) counts() (inUse, idle int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse), len(p.idle)
}

// ConnectionPool is Kombu's ConnectionPool: connections cloned from a
// template Connection, at most Limit in use at once. Pooled connections
// are lazy; they connect on first use. Safe for concurrent use.
type ConnectionPool struct {
	tmpl *Connection
	p    *resourcePool[*Connection]
}

// NewConnectionPool returns a pool of clones of conn (which the pool does
// not use or close itself).
func NewConnectionPool(conn *Connection, opts PoolOptions) *ConnectionPool {
	cp := &ConnectionPool{tmpl: conn}
	cp.p = newResourcePool("connection", opts.limit(),
		func(context.Context) (*Connection, error) { return conn.Clone(), nil },
		func(c *Connection) error { return c.Close() },
		func(c *Connection) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return !c.closed
		})
	return cp
}

// Acquire returns a connection, waiting for one to be released while the
// pool is at its limit, until ctx ends. Errors: ctx's, [ErrClosed].
func (cp *ConnectionPool) Acquire(ctx context.Context) (*Connection, error) {
	return cp.p.acquire(ctx, false)
}

// TryAcquire returns a connection, or a [*LimitExceededError] (matching
// [ErrLimitExceeded]) at once when the pool is at its limit (Kombu's
// acquire(block=False) and ConnectionLimitExceeded).
func (cp *ConnectionPool) TryAcquire() (*Connection, error) {
	return cp.p.acquire(context.Background(), true)
}

// Release returns a connection to the pool. A closed connection is
// dropped; with no limit, the connection is closed.
func (cp *ConnectionPool) Release(c *Connection) error { return cp.p.release(c) }

// Replace closes a connection and frees its place in the pool: use it for
// a connection that misbehaved (Kombu's replace).
func (cp *ConnectionPool) Replace(c *Connection) error { return cp.p.replace(c) }

// Close closes the idle connections and makes Acquire fail with
// [ErrClosed]; connections in use are closed when released.
func (cp *ConnectionPool) Close() error { return cp.p.close() }

// Limit returns the most connections in use at once (0: no limit).
func (cp *ConnectionPool) Limit() int { return cp.p.limit }

// Stats returns how many connections are in use and idle.
func (cp *ConnectionPool) Stats() (inUse, idle int) { return cp.p.counts() }

// ChannelPool is Kombu's ChannelPool: channels of one connection, at most
// Limit in use at once. Safe for concurrent use.
type ChannelPool struct {
	p *resourcePool[transport.Channel]
}

// NewChannelPool returns a pool of channels opened on conn.
func NewChannelPool(conn *Connection, opts PoolOptions) *ChannelPool {
	return &ChannelPool{p: newResourcePool("channel", opts.limit(),
		func(ctx context.Context) (transport.Channel, error) { return conn.Channel(ctx) },
		func(ch transport.Channel) error { return ignoreGone(ch.Close()) },
		func(transport.Channel) bool { return conn.Connected() })}
}

// Acquire returns a channel, opening one if none is idle and waiting while
// the pool is at its limit, until ctx ends.
func (cp *ChannelPool) Acquire(ctx context.Context) (transport.Channel, error) {
	return cp.p.acquire(ctx, false)
}

// TryAcquire is Acquire that fails at once with a [*LimitExceededError]
// when the pool is at its limit (Kombu's ChannelLimitExceeded).
func (cp *ChannelPool) TryAcquire(ctx context.Context) (transport.Channel, error) {
	return cp.p.acquire(ctx, true)
}

// Release returns a channel to the pool.
func (cp *ChannelPool) Release(ch transport.Channel) error { return cp.p.release(ch) }

// Replace closes a channel and frees its place.
func (cp *ChannelPool) Replace(ch transport.Channel) error { return cp.p.replace(ch) }

// Close closes the idle channels; channels in use are closed on release.
func (cp *ChannelPool) Close() error { return cp.p.close() }

// ProducerPoolOptions configure a ProducerPool.
type ProducerPoolOptions struct {
	// Limit is the most producers in use at once. Default (0):
	// DefaultPoolLimit; negative: no limit.
	Limit int
	// Producer are the options of the pooled producers.
	Producer ProducerOptions
}

// ProducerPool is Kombu's ProducerPool: producers, each on a connection
// acquired from a ConnectionPool (waiting for one if needed) for as long as
// the producer is in use. Safe for concurrent use.
type ProducerPool struct {
	conns *ConnectionPool
	p     *resourcePool[*Producer]
}

// NewProducerPool returns a pool of producers over conns. The producer
// options are checked on the first Acquire.
func NewProducerPool(conns *ConnectionPool, opts ProducerPoolOptions) *ProducerPool {
	pp := &ProducerPool{conns: conns}
	po := PoolOptions{Limit: opts.Limit}
	pp.p = newResourcePool("producer", po.limit(),
		func(ctx context.Context) (*Producer, error) {
			conn, err := conns.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			p, err := NewProducer(conn, opts.Producer)
			if err != nil {
				_ = conns.Release(conn)
				return nil, err
			}
			return p, nil
		},
		func(p *Producer) error { return conns.Release(p.conn) },
		// A producer is cheap and its connection must go back to the
		// connection pool: never keep it idle.
		func(*Producer) bool { return false })
	return pp
}

// Acquire returns a producer with a connection of its own, waiting while
// either pool is at its limit, until ctx ends.
func (pp *ProducerPool) Acquire(ctx context.Context) (*Producer, error) {
	return pp.p.acquire(ctx, false)
}

// TryAcquire is Acquire that fails at once with a [*LimitExceededError]
// when the producer pool is at its limit. (It still waits for a connection
// if the connection pool is full; bound that with ctx.)
func (pp *ProducerPool) TryAcquire(ctx context.Context) (*Producer, error) {
	return pp.p.acquire(ctx, true)
}

// Release returns a producer and its connection to the pools.
func (pp *ProducerPool) Release(p *Producer) error { return pp.p.release(p) }

// Replace releases a producer and replaces its connection (closing it),
// for a producer whose publish failed with a connection error.
func (pp *ProducerPool) Replace(p *Producer) error {
	if _, err := pp.p.take(p); err != nil {
		return err
	}
	return pp.conns.Replace(p.conn)
}

// Close makes Acquire fail with [ErrClosed]. It does not close the
// connection pool.
func (pp *ProducerPool) Close() error { return pp.p.close() }
