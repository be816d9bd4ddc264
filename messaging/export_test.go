package messaging

import (
	"context"
	"time"

	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// SetClock replaces the connection's time source, so that retry tests never
// sleep.
func SetClock(c *Connection, now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) {
	c.clk = clock{now: now, sleep: sleep}
}

// SetWorkerClock replaces a worker's time source.
func SetWorkerClock(w *ConsumerWorker, now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) {
	w.clk = clock{now: now, sleep: sleep}
}

// RetryWithClock is Retry with a fake clock.
func RetryWithClock(ctx context.Context, now func() time.Time, sleep func(ctx context.Context, d time.Duration) error,
	p RetryPolicy, retryable func(error) bool, fn func(ctx context.Context) error) error {
	return retryWith(ctx, clock{now: now, sleep: sleep}, p, retryable, fn)
}

// Intervals returns the first n intervals of policy p after defaults
// (start, step, max).
func Intervals(p RetryPolicy, start, step, max time.Duration, n int) []time.Duration {
	it := newIntervals(p.withDefaults(start, step, max))
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = it.next()
	}
	return out
}

// CurrentURL returns the raw URL the connection would dial now.
func CurrentURL(c *Connection) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps[c.cur].raw
}

// DeclaredKeys returns the declaration cache.
func DeclaredKeys(c *Connection) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.declared {
		out = append(out, k)
	}
	return out
}

// CacheKey exposes a declaration's cache key.
func CacheKey(d Declaration) string { return d.cacheKey() }

// NewTestMessage wraps a transport message as a consumer would, and
// decompresses it as the decode pool would.
func NewTestMessage(tm *transport.Message, ch transport.Channel, ser *serializer.Registry,
	comp *compression.Registry, accept *serializer.AcceptSet, noAck bool) *Message {
	m := newMessage(tm, ch, ser, accept, noAck)
	m.decompress(comp, 0)
	return m
}
