package sqs

import (
	"context"
	"errors"
	"strings"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Channel is an SQS channel: Kombu's virtual channel (package channel)
// over SQS. The methods are those of transport.Channel, with the same
// concurrency rules (see the package channel documentation), plus
// transport.Returner and [Channel.ListQueues].
type Channel struct {
	ch   *channel.Channel
	conn *Conn
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// DeclareExchange declares an exchange in the process-local state.
func (c *Channel) DeclareExchange(ctx context.Context, ex transport.Exchange) error {
	return c.ch.DeclareExchange(ctx, ex)
}

// DeleteExchange deletes an exchange from the process-local state.
func (c *Channel) DeleteExchange(ctx context.Context, name string, ifUnused bool) error {
	return c.ch.DeleteExchange(ctx, name, ifUnused)
}

// DeclareQueue creates the SQS queue when missing (passive: checks it).
func (c *Channel) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	return c.ch.DeclareQueue(ctx, q)
}

// BindQueue binds a queue in the process-local state.
func (c *Channel) BindQueue(ctx context.Context, b transport.Binding) error {
	return c.ch.BindQueue(ctx, b)
}

// UnbindQueue unbinds a queue in the process-local state.
func (c *Channel) UnbindQueue(ctx context.Context, b transport.Binding) error {
	return c.ch.UnbindQueue(ctx, b)
}

// DeleteQueue deletes the SQS queue (nothing with predefined queues).
func (c *Channel) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	return c.ch.DeleteQueue(ctx, name, ifUnused, ifEmpty)
}

// PurgeQueue purges the SQS queue.
func (c *Channel) PurgeQueue(ctx context.Context, name string) (int, error) {
	return c.ch.PurgeQueue(ctx, name)
}

// Publish routes m and sends it to each queue it reaches (SendMessage).
func (c *Channel) Publish(ctx context.Context, m *transport.Message, exchange, routingKey string, opts transport.PublishOptions) error {
	return c.ch.Publish(ctx, m, exchange, routingKey, opts)
}

// Get receives one message without a long poll.
func (c *Channel) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	return c.ch.Get(ctx, queue, noAck)
}

// Consume starts a consumer; deliveries run on the hub goroutine.
func (c *Channel) Consume(ctx context.Context, opts transport.ConsumeOptions, fn transport.DeliverFunc) (string, error) {
	return c.ch.Consume(ctx, opts, fn)
}

// Cancel stops a consumer.
func (c *Channel) Cancel(ctx context.Context, consumerTag string) error {
	return c.ch.Cancel(ctx, consumerTag)
}

// Ack acknowledges a delivery: DeleteMessage of its receipt handle.
func (c *Channel) Ack(deliveryTag string) error { return c.ch.Ack(deliveryTag) }

// Reject rejects a delivery: with requeue, ChangeMessageVisibility to 0;
// without, DeleteMessage.
func (c *Channel) Reject(deliveryTag string, requeue bool) error {
	return c.ch.Reject(deliveryTag, requeue)
}

// Qos sets the prefetch window; each ReceiveMessage asks for at most the
// room left in it (and at most 10).
func (c *Channel) Qos(ctx context.Context, prefetchCount int) error {
	return c.ch.Qos(ctx, prefetchCount)
}

// Recover makes every unacknowledged delivery visible again.
func (c *Channel) Recover(ctx context.Context) error { return c.ch.Recover(ctx) }

// OnReturn sets the function that receives mandatory messages no queue
// took; it runs on the hub goroutine.
func (c *Channel) OnReturn(fn func(*transport.Returned)) { c.ch.HandleReturns(fn) }

// ListQueues returns the names of the SQS queues whose names start with
// the transport's queue_name_prefix followed by prefix (without
// queue_name_prefix, and as SQS spells them: "a.b" was created as "a-b"),
// or the predefined queues. Safe for concurrent use; it calls SQS on the caller's goroutine.
func (c *Channel) ListQueues(ctx context.Context, prefix string) ([]string, error) {
	cl := c.conn.cl
	if pq := c.conn.t.o.PredefinedQueues; pq != nil {
		var names []string
		want := cl.canonical(prefix)
		for name := range pq {
			if strings.HasPrefix(name, want) {
				names = append(names, name)
			}
		}
		return names, nil
	}
	names, err := cl.list(ctx, cl.canonical(prefix))
	if p := EntityName(c.conn.t.o.QueueNamePrefix); p != "" {
		for i, n := range names {
			names[i] = strings.TrimPrefix(n, p)
		}
	}
	return names, err
}

// Close closes the channel: consumers cancelled, unacknowledged messages
// made visible again (ChangeMessageVisibility 0), and forgets it on its
// connection. From a hub callback it returns an error matching
// hub.ErrInCallback and the channel stays open.
func (c *Channel) Close() error {
	err := c.ch.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	c.conn.chans.Remove(c)
	return err
}
