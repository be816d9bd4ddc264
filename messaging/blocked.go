package messaging

import (
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/amqp"
)

// OnBlocked sets fn to run when the broker blocks the connection
// (connection.blocked: RabbitMQ stops reading from publishing connections
// during a memory or disk alarm, so publishes stall until it unblocks),
// with the broker's reason, such as "low on memory". It is Kombu's
// on_blocked callback (a pyamqp transport option there). fn runs on the
// hub goroutine and must not block. It serves the current connection and
// every later one (reconnections, failover); a later call replaces fn, and
// nil removes it. Transports that have no such notification (memory,
// Redis) never call it.
func (c *Connection) OnBlocked(fn func(reason string)) {
	if fn == nil {
		c.onBlocked.Store(nil)
		return
	}
	c.onBlocked.Store(&fn)
}

// OnUnblocked sets fn to run when the broker unblocks the connection
// (connection.unblocked: the alarm cleared), Kombu's on_unblocked. The
// rules of [Connection.OnBlocked] apply.
func (c *Connection) OnUnblocked(fn func()) {
	if fn == nil {
		c.onUnblocked.Store(nil)
		return
	}
	c.onUnblocked.Store(&fn)
}

// watchBlocked routes a new transport connection's blocked notifications
// to the hooks current when they fire.
func (c *Connection) watchBlocked(tc transport.Conn) {
	b, ok := tc.(amqp.Blocker)
	if !ok {
		return
	}
	b.OnBlocked(func(blocked bool, reason string) {
		if blocked {
			if fn := c.onBlocked.Load(); fn != nil {
				(*fn)(reason)
			}
			return
		}
		if fn := c.onUnblocked.Load(); fn != nil {
			(*fn)()
		}
	})
}
