package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// maxPending bounds the errors kept for DrainEvents when nobody drains.
const maxPending = 64

// report records an error for DrainEvents. Called on the hub goroutine.
func (c *Connection) report(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if len(c.pending) >= maxPending {
		c.dropped++
		return
	}
	c.pending = append(c.pending, err)
}

func (c *Connection) hasPending() bool {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return len(c.pending) > 0
}

func (c *Connection) takePending() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if len(c.pending) == 0 {
		return nil
	}
	err := c.pending[0]
	c.pending = c.pending[1:]
	return err
}

// DrainEvents runs the hub on the calling goroutine until at least one
// message was delivered to a Consumer of this connection, then returns nil
// (Kombu's drain_events). It connects first if needed.
//
// It returns early with an error:
//
//   - a [*DecodeError] when a consumer could not decode a message and had
//     no OnDecodeError handler (the message was rejected);
//   - a connection error (transport.IsConnectionError) when the connection
//     broke, reported once: the next call reconnects, and Consumer.Consume
//     restarts consumers (a [ConsumerWorker] does both for you);
//   - [ErrClosed] when the Connection is closed, from any goroutine;
//   - an error matching both [ErrTimeout] and context.DeadlineExceeded when
//     ctx's deadline passes first, and ctx.Err() when it is cancelled;
//   - an error matching hub.ErrRunning when another goroutine runs the hub
//     (h.Run): deliveries then already flow;
//   - an error matching hub.ErrInCallback when called from a callback of
//     the hub, which would wait for itself.
//
// One goroutine at a time may run a hub; never call DrainEvents from a
// hub callback.
func (c *Connection) DrainEvents(ctx context.Context) error {
	if err := c.takePending(); err != nil {
		return err
	}
	// A connection that broke since the last call is reported before
	// anything reconnects: its consumers are gone, and a silent lazy
	// reconnection would leave the caller waiting on a connection without
	// them. The next call reconnects.
	tc, h, err := c.currentOrLost(ctx)
	if err != nil {
		return err
	}
	start := c.deliveries.Load()
	done := tc.Done()
	cond := func() bool {
		if c.deliveries.Load() != start || c.hasPending() || c.closing.Load() {
			return true
		}
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	if err := h.Drive(ctx, cond); err != nil {
		switch {
		case errors.Is(err, hub.ErrRunning), errors.Is(err, hub.ErrInCallback):
			return fmt.Errorf("messaging: DrainEvents: %w", err)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			return &timeoutError{cause: ctx.Err()}
		case errors.Is(err, hub.ErrClosed) && c.closing.Load():
			// Close ended the drive: report the connection's closure.
			return ErrClosed
		}
		return err
	}
	if err := c.takePending(); err != nil {
		return err
	}
	if c.deliveries.Load() != start {
		return nil
	}
	if c.closing.Load() {
		return ErrClosed
	}
	if err := c.takeLost(); err != nil {
		return err
	}
	return lostError(tc.Err())
}

// takeLost detaches a transport connection that broke (not closed by this
// Connection) and returns its error as a connection error; nil when the
// connection is alive or absent.
func (c *Connection) takeLost() error {
	c.mu.Lock()
	tc := c.tconn
	if tc == nil || c.closed || tc.Err() == nil {
		c.mu.Unlock()
		return nil
	}
	ch, old := c.detachLocked()
	c.mu.Unlock()
	_ = closeConn(ch, old)
	return lostError(tc.Err())
}

// lostError makes sure the error of a broken connection is a connection
// error (transport.IsConnectionError).
func lostError(err error) error {
	if err == nil || !transport.IsConnectionError(err) {
		if err == nil {
			err = transport.ErrClosed
		}
		return fmt.Errorf("%w: %w", transport.ErrConnectionLost, err)
	}
	return err
}

// delivered counts a delivery for DrainEvents. Called on the hub goroutine.
func (c *Connection) delivered() { c.deliveries.Add(1) }
