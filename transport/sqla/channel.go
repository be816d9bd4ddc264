package sqla

import (
	"context"
	"errors"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Channel is a channel of the SQL transport: Kombu's virtual channel over
// the message table. It implements transport.Channel and
// transport.Returner; the methods are those of the virtual channel
// (package channel), whose documentation says which goroutines may call
// them.
type Channel struct {
	ch *channel.Channel
	st *store
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// DeclareExchange declares an exchange (process-local, as in Kombu).
func (c *Channel) DeclareExchange(ctx context.Context, ex transport.Exchange) error {
	return c.ch.DeclareExchange(ctx, ex)
}

// DeleteExchange deletes an exchange.
func (c *Channel) DeleteExchange(ctx context.Context, name string, ifUnused bool) error {
	return c.ch.DeleteExchange(ctx, name, ifUnused)
}

// DeclareQueue declares a queue: its row in the queue table.
func (c *Channel) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	return c.ch.DeclareQueue(ctx, q)
}

// BindQueue binds a queue to an exchange (process-local, as in Kombu).
func (c *Channel) BindQueue(ctx context.Context, b transport.Binding) error {
	return c.ch.BindQueue(ctx, b)
}

// UnbindQueue removes a binding.
func (c *Channel) UnbindQueue(ctx context.Context, b transport.Binding) error {
	return c.ch.UnbindQueue(ctx, b)
}

// DeleteQueue purges the queue (Kombu keeps its row) and forgets its
// bindings.
func (c *Channel) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	return c.ch.DeleteQueue(ctx, name, ifUnused, ifEmpty)
}

// PurgeQueue deletes the queue's ready messages.
func (c *Channel) PurgeQueue(ctx context.Context, name string) (int, error) {
	return c.ch.PurgeQueue(ctx, name)
}

// Publish routes the message and inserts a row per destination queue.
func (c *Channel) Publish(ctx context.Context, m *transport.Message, exchange, routingKey string, opts transport.PublishOptions) error {
	return c.ch.Publish(ctx, m, exchange, routingKey, opts)
}

// Get claims one message (Kombu's basic_get).
func (c *Channel) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	return c.ch.Get(ctx, queue, noAck)
}

// Consume starts a consumer; fn runs on the hub goroutine.
func (c *Channel) Consume(ctx context.Context, opts transport.ConsumeOptions, fn transport.DeliverFunc) (string, error) {
	return c.ch.Consume(ctx, opts, fn)
}

// Cancel stops a consumer.
func (c *Channel) Cancel(ctx context.Context, consumerTag string) error {
	return c.ch.Cancel(ctx, consumerTag)
}

// Ack acknowledges a delivery: its row is deleted.
func (c *Channel) Ack(deliveryTag string) error { return c.ch.Ack(deliveryTag) }

// Reject rejects a delivery: its row is deleted, or with requeue moved to
// the back of its queue marked redelivered.
func (c *Channel) Reject(deliveryTag string, requeue bool) error {
	return c.ch.Reject(deliveryTag, requeue)
}

// Qos sets the prefetch window.
func (c *Channel) Qos(ctx context.Context, prefetchCount int) error {
	return c.ch.Qos(ctx, prefetchCount)
}

// Recover gives every unacknowledged delivery back to its queue.
func (c *Channel) Recover(ctx context.Context) error { return c.ch.Recover(ctx) }

// OnReturn sets the function that receives mandatory messages no queue
// took; it runs on the hub goroutine.
func (c *Channel) OnReturn(fn func(*transport.Returned)) { c.ch.HandleReturns(fn) }

// Close closes the channel: its unacknowledged messages go back to their
// queues. From a hub callback it returns an error matching
// hub.ErrInCallback and the channel stays open.
func (c *Channel) Close() error {
	err := c.ch.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	c.st.c.chans.Remove(c)
	return err
}

// Queues lists every queue of the queue table with its ready and invisible
// rows (what `kombu queues` shows). Any goroutine.
func (c *Channel) Queues(ctx context.Context) ([]QueueStat, error) { return c.st.c.Queues(ctx) }
