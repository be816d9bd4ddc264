package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/transport"
)

// maxBatch bounds the deliveries one Post carries to the hub.
const maxBatch = 128

// consumer is a basic.consume that outlives channel reopens and
// reconnections: each generation starts it again with the same tag and
// callback.
type consumer struct {
	ch        *channel
	tag       string
	noAck     bool
	exclusive bool
	args      amqp091.Table
	fn        transport.DeliverFunc
	onCancel  func(tag string, err error) // ConsumeOptions.OnCancel; may be nil
	// cancelled is set by Cancel; the hub reads it before each callback.
	// A consumer the broker cancels is not marked: the deliveries it got
	// before the cancel still reach fn, ahead of OnCancel.
	cancelled atomic.Bool

	// Executor-owned.
	queue string
	fwd   *forwarder
}

// forwarder moves one generation's deliveries of one consumer to the hub:
// it drains what amqp091 has ready and posts it as one batch. It never
// blocks on the hub.
type forwarder struct {
	cons  *consumer
	gen   *chanGen
	queue string
	in    <-chan amqp091.Delivery
	done  chan struct{}
}

func (f *forwarder) run() {
	defer close(f.done)
	c := f.cons.ch.c
	var batch []*transport.Message
	for d := range f.in {
		batch = append(batch, f.convert(&d))
	drain:
		for len(batch) < maxBatch {
			select {
			case d, ok := <-f.in:
				if !ok {
					break drain
				}
				batch = append(batch, f.convert(&d))
			default:
				break drain
			}
		}
		msgs := batch
		c.h.Post(func() { f.dispatch(msgs) })
		batch = nil
	}
	c.enqueue(op{kind: opEvent, ev: func() { c.consumerEnded(f) }})
}

func (f *forwarder) convert(d *amqp091.Delivery) *transport.Message {
	f.gen.see(d.DeliveryTag)
	return fromDelivery(d, f.gen.offset+d.DeliveryTag, f.queue)
}

// dispatch runs on the hub. Deliveries of a closed channel or of a dead
// generation are dropped (the broker requeued them when the AMQP channel
// closed), except no-ack ones, which the broker counts as delivered.
// Deliveries to a cancelled consumer are requeued. If a callback panics,
// the rest of the batch is delivered in the next turn and the hub handles
// the panic.
func (f *forwarder) dispatch(msgs []*transport.Message) {
	next := 0
	defer func() {
		if next < len(msgs) {
			rest := msgs[next:]
			f.cons.ch.c.h.CallSoon(func() { f.dispatch(rest) })
		}
	}()
	cons := f.cons
	ch := cons.ch
	for next < len(msgs) {
		m := msgs[next]
		next++
		switch {
		case ch.closed.Load():
		case f.gen.dead.Load() && !cons.noAck:
		case cons.cancelled.Load() && !cons.noAck:
			_ = ch.Reject(m.DeliveryInfo.DeliveryTag, true)
		default:
			cons.fn(m)
		}
	}
}

// Consume starts a consumer; it returns once the broker accepted it.
// Deliveries reach fn on the hub goroutine. The consumer survives channel
// reopens and reconnections with the same tag and callback.
func (ch *channel) Consume(ctx context.Context, opts transport.ConsumeOptions, fn transport.DeliverFunc) (string, error) {
	if fn == nil {
		return "", errors.New("amqp: Consume needs a callback")
	}
	args, err := toTable(opts.Arguments)
	if err != nil {
		return "", fmt.Errorf("amqp: consumer arguments: %w", err)
	}
	c := ch.c
	tag := opts.ConsumerTag
	if tag == "" {
		tag = c.newTag()
	}
	cons := &consumer{ch: ch, tag: tag, noAck: opts.NoAck, exclusive: opts.Exclusive,
		args: args, fn: fn, onCancel: opts.OnCancel}
	err = ch.exec(ctx, func() error {
		if err := ch.ensure(); err != nil {
			return err
		}
		for _, x := range ch.consumers {
			if x.tag == tag {
				// RabbitMQ answers a reused tag with a connection error.
				return fmt.Errorf("amqp: consumer tag %q already in use on this channel", tag)
			}
		}
		cons.queue = c.topo.resolve(opts.Queue)
		g := ch.gen
		if err := ch.startConsumer(cons); err != nil {
			return ch.after(g, err)
		}
		ch.consumers = append(ch.consumers, cons)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			// The call may have started before ctx ended: undo it after it
			// (the executor runs requests in order), so that no consumer
			// the caller does not know about keeps delivering.
			c.enqueue(op{kind: opEvent, ev: func() {
				if err := ch.cancelConsumer(tag); err != nil {
					c.log.Debug("amqp: cancel of an abandoned consumer failed", "tag", tag, "err", err)
				}
			}})
		}
		return "", err
	}
	return tag, nil
}

// startConsumer sends basic.consume on the current generation and starts
// the forwarder (executor).
func (ch *channel) startConsumer(cons *consumer) error {
	c := ch.c
	g := ch.gen
	in, err := g.ach.Consume(cons.queue, cons.tag, cons.noAck, cons.exclusive, false, false, cons.args)
	if err != nil {
		return err
	}
	if cons.noAck {
		g.st.disableMulti()
	}
	f := &forwarder{cons: cons, gen: g, queue: cons.queue, in: in, done: make(chan struct{})}
	g.fwds = append(g.fwds, f)
	cons.fwd = f
	c.goroutines.Add(1)
	go func() {
		defer c.goroutines.Done()
		f.run()
	}()
	return nil
}

// Cancel stops a consumer (basic.cancel) and waits until its forwarder
// handed over the deliveries already received. No callback for this
// consumer starts after Cancel returns; deliveries still in flight are
// requeued, except for a no-ack consumer, which gets them (the broker
// counts them as delivered). Unknown tags are ignored.
func (ch *channel) Cancel(ctx context.Context, consumerTag string) error {
	return ch.exec(ctx, func() error { return ch.cancelConsumer(consumerTag) })
}

// cancelConsumer is Cancel on the executor.
func (ch *channel) cancelConsumer(consumerTag string) error {
	c := ch.c
	var cons *consumer
	for _, x := range ch.consumers {
		if x.tag == consumerTag {
			cons = x
			break
		}
	}
	if cons == nil {
		return nil
	}
	cons.cancelled.Store(true)
	ch.removeConsumer(cons)
	defer c.topo.consumerGone(cons.queue, c.chans)
	f := cons.fwd
	cons.fwd = nil
	g := ch.gen
	if f == nil || f.gen != g || g.retired || g.ach.IsClosed() {
		return nil // the consumer is already gone with its channel
	}
	if err := g.ach.Cancel(consumerTag, false); err != nil {
		if g.ach.IsClosed() {
			_ = ch.after(g, err)
			return nil
		}
		return brokerError(err, c.ac.IsClosed())
	}
	<-f.done
	return nil
}

// consumerEnded handles a forwarder whose delivery channel amqp091 closed:
// the connection or the AMQP channel died (recover or reopen), or the
// broker cancelled the consumer (its queue was deleted).
func (c *conn) consumerEnded(f *forwarder) {
	cons := f.cons
	ch := cons.ch
	g := f.gen
	if ch.closed.Load() || ch.gen != g || g.retired {
		return
	}
	if c.ac == nil || c.ac.IsClosed() {
		if err := c.ensureConn(); err != nil && c.failed == nil {
			c.log.Debug("amqp: recovery interrupted", "err", err)
		}
		return
	}
	if g.ach.IsClosed() {
		if err := ch.reopen(); err != nil {
			c.log.Warn("amqp: could not reopen the channel", "err", err)
		}
		return
	}
	if cons.fwd == f && !cons.cancelled.Load() {
		// amqp091 closed the delivery channel of a consumer nobody
		// cancelled, on an open channel: basic.cancel from the broker.
		cons.fwd = nil
		ch.brokerCancelled(cons, nil)
	}
}

// brokerCancelled drops a consumer the broker ended by itself (cause is
// nil for basic.cancel, else the broker's refusal to restart it) and tells
// its OnCancel on the hub, after the deliveries already posted
// (executor).
func (ch *channel) brokerCancelled(cons *consumer, cause error) {
	c := ch.c
	ch.removeConsumer(cons)
	c.topo.consumerGone(cons.queue, c.chans)
	var err error
	if cause == nil {
		c.log.Warn("amqp: the broker cancelled a consumer", "tag", cons.tag, "queue", cons.queue)
		err = fmt.Errorf("%w: basic.cancel (the queue was deleted, or lost the replica it was consumed on)",
			transport.ErrConsumerCancelled)
	} else {
		c.log.Error("amqp: consumer could not be restarted; dropped", "tag", cons.tag, "queue", cons.queue, "err", cause)
		err = fmt.Errorf("%w: the broker refused to restart it: %w", transport.ErrConsumerCancelled, cause)
	}
	if fn := cons.onCancel; fn != nil {
		tag := cons.tag
		c.h.Post(func() { fn(tag, err) })
	}
}
