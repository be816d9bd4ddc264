package messaging

import (
	"context"
	"errors"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// Ensure runs fn with the connection's default channel until it succeeds,
// reconnecting when it fails with a connection error (Kombu's ensure and
// autoretry in one). The policy's defaults are Kombu's ensure defaults:
// intervals 1 s, 1 s, 1 s and unlimited retries (bounded by ctx).
//
// On a connection error (transport.IsConnectionError, or a closed channel
// of a broken connection) Ensure switches to the next alternate URL,
// drops the broken connection, calls Errback(err, 0), reconnects under the
// policy (failing over between alternates), calls OnRevive with the new
// default channel, and calls fn again with it. On one of the channel errors
// Kombu's AMQP transport calls recoverable (311, 313, 405) it reopens the
// default channel and retries. Errors for which RetryOn returns true are
// retried at once. Any other error is returned as it is.
//
// When the retries are exhausted the error is an [*OperationalError]
// wrapping the last one; when ctx ends, the error matches ctx.Err() and
// the last error. fn must honour ctx. Safe for concurrent use; must not be
// called from a hub callback.
func (c *Connection) Ensure(ctx context.Context, p RetryPolicy, fn func(ctx context.Context, ch transport.Channel) error) error {
	p = p.withDefaults(time.Second, time.Second, time.Second)
	max, limited := p.limit()
	for retries := 0; ; retries++ {
		ch, err := c.DefaultChannel(ctx)
		gen := c.generation()
		if err == nil {
			if err = fn(ctx, ch); err == nil {
				return nil
			}
		} else if errors.Is(err, ErrOperational) || errors.Is(err, ErrClosed) {
			return err
		}
		if ctx.Err() != nil {
			return joinCtx(err, ctx)
		}
		switch {
		case p.RetryOn != nil && p.RetryOn(err):
			if limited && retries >= max {
				return err
			}
			c.log.Debug("messaging: ensure: retrying", "err", err)
		case c.isConnectionError(err) && c.generation() != gen:
			// Another goroutine reconnected meanwhile: use its connection
			// rather than drop it.
			if limited && retries >= max {
				return &OperationalError{Op: "ensure", Attempts: retries + 1, Err: err}
			}
		case c.isConnectionError(err):
			if limited && retries >= max {
				return &OperationalError{Op: "ensure", Attempts: retries + 1, Err: err}
			}
			c.log.Warn("messaging: ensure: connection error, reconnecting", "err", err)
			c.switchNext()
			c.collect()
			if p.Errback != nil {
				p.Errback(err, 0)
			}
			cp := p
			cp.MaxRetries = 0
			if limited {
				cp.MaxRetries = max - retries
				if cp.MaxRetries < 1 {
					cp.MaxRetries = 1
				}
			}
			if cerr := c.ensureConnection(ctx, cp, false); cerr != nil {
				if errors.Is(cerr, ErrClosed) || ctx.Err() != nil {
					return cerr
				}
				return &OperationalError{Op: "ensure", Attempts: retries + 1, Err: cerr}
			}
			if nch, cerr := c.DefaultChannel(ctx); cerr == nil && p.OnRevive != nil {
				p.OnRevive(nch)
			}
		case ch != nil && errors.Is(err, transport.ErrClosed) && c.staleChannel(ch):
			// Another goroutine reconnected meanwhile and closed the old
			// default channel under fn: try again on the new one.
			if limited && retries >= max {
				return &OperationalError{Op: "ensure", Attempts: retries + 1, Err: err}
			}
		case isRecoverableChannelError(err):
			if limited && retries > max {
				return err
			}
			if p.Errback != nil {
				p.Errback(err, 0)
			}
			if ch != nil {
				c.dropDefaultChannel(ch)
			}
		default:
			return err
		}
	}
}
