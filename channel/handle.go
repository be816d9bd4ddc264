package channel

import (
	"context"

	"github.com/kombu-go/kombu/transport"
)

// Handle is the public face of a virtual [Channel]: the methods of
// transport.Channel and HandleReturns, without the hooks that its store
// and its transport use on the hub (Deliver, Room, NoAck, Wake, Lookup,
// State, ...). The memory and Redis transports embed it in their channel
// types, so that those hooks are not part of their API. Its methods are
// those of the Channel it wraps, with the same concurrency rules; Close
// closes the Channel (transports wrap it to forget the channel too).
type Handle struct{ c *Channel }

// Handle returns the public face of c.
func (c *Channel) Handle() Handle { return Handle{c} }

var _ transport.Channel = Handle{}

// DeclareExchange declares an exchange.
func (h Handle) DeclareExchange(ctx context.Context, ex transport.Exchange) error {
	return h.c.DeclareExchange(ctx, ex)
}

// DeleteExchange deletes an exchange and its bindings.
func (h Handle) DeleteExchange(ctx context.Context, name string, ifUnused bool) error {
	return h.c.DeleteExchange(ctx, name, ifUnused)
}

// DeclareQueue declares a queue and returns its message count.
func (h Handle) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	return h.c.DeclareQueue(ctx, q)
}

// BindQueue binds a queue to an exchange.
func (h Handle) BindQueue(ctx context.Context, b transport.Binding) error {
	return h.c.BindQueue(ctx, b)
}

// UnbindQueue removes a binding.
func (h Handle) UnbindQueue(ctx context.Context, b transport.Binding) error {
	return h.c.UnbindQueue(ctx, b)
}

// DeleteQueue deletes a queue and returns how many messages it held.
func (h Handle) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	return h.c.DeleteQueue(ctx, name, ifUnused, ifEmpty)
}

// PurgeQueue removes every ready message of a queue and returns how many.
func (h Handle) PurgeQueue(ctx context.Context, name string) (int, error) {
	return h.c.PurgeQueue(ctx, name)
}

// Publish routes m through exchange with routingKey and stores a copy in
// every queue it reaches (see transport.Channel).
func (h Handle) Publish(ctx context.Context, m *transport.Message, exchange, routingKey string, opts transport.PublishOptions) error {
	return h.c.Publish(ctx, m, exchange, routingKey, opts)
}

// Get takes one message from queue; transport.ErrEmpty when there is none.
func (h Handle) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	return h.c.Get(ctx, queue, noAck)
}

// Consume starts a consumer; deliveries run fn on the hub goroutine.
func (h Handle) Consume(ctx context.Context, opts transport.ConsumeOptions, fn transport.DeliverFunc) (string, error) {
	return h.c.Consume(ctx, opts, fn)
}

// Cancel stops the consumer with this tag.
func (h Handle) Cancel(ctx context.Context, consumerTag string) error {
	return h.c.Cancel(ctx, consumerTag)
}

// Ack acknowledges a delivery (asynchronous).
func (h Handle) Ack(deliveryTag string) error { return h.c.Ack(deliveryTag) }

// Reject rejects a delivery; with requeue it goes back to its queue.
func (h Handle) Reject(deliveryTag string, requeue bool) error {
	return h.c.Reject(deliveryTag, requeue)
}

// Qos sets the prefetch window (0: unlimited).
func (h Handle) Qos(ctx context.Context, prefetchCount int) error {
	return h.c.Qos(ctx, prefetchCount)
}

// Recover gives every unacknowledged message of the channel back to its
// queue.
func (h Handle) Recover(ctx context.Context) error { return h.c.Recover(ctx) }

// HandleReturns sets the function that receives mandatory messages no
// binding routed (reply code 312, NO_ROUTE); fn runs on the hub
// goroutine; nil removes it.
func (h Handle) HandleReturns(fn func(*transport.Returned)) { h.c.HandleReturns(fn) }

// Close closes the channel (see Channel.Close).
func (h Handle) Close() error { return h.c.Close() }
