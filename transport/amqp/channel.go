package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/transport"
)

// channel is a transport.Channel over one AMQP channel at a time. The AMQP
// channel is replaced (a new generation) after a channel error or a
// reconnection; delivery tags stay unique across generations because each
// generation adds an offset to the broker's tags.
type channel struct {
	c        *conn
	closed   atomic.Bool
	onReturn atomic.Pointer[func(*transport.Returned)]

	// Executor-owned state.
	gen       *chanGen
	nextOff   uint64 // tag offset of the next generation
	prefetch  int
	consumers []*consumer
	// confirming is set by the first Publish asking for a confirmation
	// (transport.PublishOptions.Confirm) on a connection without
	// confirm_publish: the channel stays in confirm mode from then on,
	// reopened generations included (AMQP has no way back).
	confirming bool
}

// chanGen is one AMQP channel's life.
type chanGen struct {
	ach     *amqp091.Channel
	ac      *amqp091.Connection // the connection ach belongs to
	offset  uint64
	closeCh chan *amqp091.Error // capacity 1: amqp091 never blocks on it
	// dead is set by the executor once this generation is over; the hub
	// reads it to drop deliveries the broker has already requeued.
	dead atomic.Bool
	// seen is the highest broker tag delivered on this generation, raised
	// by the forwarders and by Get.
	seen atomic.Uint64

	// Executor-owned.
	st      settler
	fwds    []*forwarder
	retired bool
}

func (g *chanGen) see(tag uint64) {
	for {
		cur := g.seen.Load()
		if tag <= cur || g.seen.CompareAndSwap(cur, tag) {
			return
		}
	}
}

var (
	_ transport.Channel  = (*channel)(nil)
	_ transport.Returner = (*channel)(nil)
	_ transport.Flower   = (*channel)(nil)
)

// closedErr is the error of a call on a closed channel: the connection's
// own error if the connection is over (closed, or lost for good), else
// ErrClosed.
func (ch *channel) closedErr() error {
	if err := ch.c.usable(); err != nil {
		return err
	}
	return fmt.Errorf("amqp: channel: %w", transport.ErrClosed)
}

// exec runs fn on the executor after checking that the channel is open.
func (ch *channel) exec(ctx context.Context, fn func() error) error {
	if ch.closed.Load() {
		return ch.closedErr()
	}
	return ch.c.do(ctx, func() error {
		if ch.closed.Load() {
			return ch.closedErr()
		}
		return fn()
	})
}

// ensure makes sure the connection and this channel are open.
func (ch *channel) ensure() error {
	if err := ch.c.ensureConn(); err != nil {
		return err
	}
	if ch.gen != nil && !ch.gen.retired && !ch.gen.ach.IsClosed() {
		return nil
	}
	return ch.reopen()
}

// after maps err from an operation on generation g. A channel error closed
// the AMQP channel: reopen it at once, so that its consumers resume.
func (ch *channel) after(g *chanGen, err error) error {
	if err == nil {
		return nil
	}
	c := ch.c
	connLost := c.ac == nil || c.ac.IsClosed()
	mapped := brokerError(err, connLost)
	if !connLost && g.ach.IsClosed() && ch.gen == g && !ch.closed.Load() {
		if rerr := ch.reopen(); rerr != nil {
			c.log.Warn("amqp: could not reopen the channel", "err", rerr)
		}
	}
	return mapped
}

// open starts a new generation: the AMQP channel, confirm mode, the return
// listener and the prefetch window.
func (ch *channel) open() (*chanGen, error) {
	c := ch.c
	ach, err := c.ac.Channel()
	if err != nil {
		return nil, c.channelError(err)
	}
	g := &chanGen{ach: ach, ac: c.ac, offset: ch.nextOff}
	g.closeCh = ach.NotifyClose(make(chan *amqp091.Error, 1))
	fail := func(err error) (*chanGen, error) {
		_ = ach.Close()
		return nil, brokerError(err, c.ac.IsClosed())
	}
	if c.s.ConfirmPublish || ch.confirming {
		if err := ach.Confirm(false); err != nil {
			return fail(err)
		}
	}
	c.notif.watchReturns(ch, ach.NotifyReturn(make(chan amqp091.Return, 16)))
	if ch.prefetch > 0 {
		if err := ach.Qos(ch.prefetch, 0, false); err != nil {
			return fail(err)
		}
	}
	return g, nil
}

// reopen replaces the current generation and restarts the consumers. A
// consumer the broker refuses now (its queue is gone) is dropped and
// logged. Only a connection failure is returned.
func (ch *channel) reopen() error {
	c := ch.c
	c.inner++
	defer func() { c.inner-- }()
	if g := ch.gen; g != nil && !g.retired {
		if !g.ach.IsClosed() {
			_ = g.ach.Close()
		}
		select {
		case e := <-g.closeCh:
			if e != nil {
				c.log.Warn("amqp: channel closed by the broker; reopening", "err", e.Error())
			}
		default:
		}
		ch.retire()
	}
	redeclared := map[string]bool{}
	for range 2*len(ch.consumers) + 1 {
		g, err := ch.open()
		if err != nil {
			return err
		}
		ch.gen = g
		refused := false
		for _, cons := range append([]*consumer(nil), ch.consumers...) {
			err := ch.startConsumer(cons)
			if err == nil {
				continue
			}
			if c.ac.IsClosed() {
				return brokerError(err, true)
			}
			refused = true // the refusal closed the channel
			var ae *amqp091.Error
			if errors.As(err, &ae) && ae.Code == 404 && !redeclared[cons.queue] {
				// An auto-delete queue went with the old channel: declare
				// it again (if this connection declared it) and retry.
				redeclared[cons.queue] = true
				if c.redeclareQueue(cons.queue) {
					break
				}
			}
			ch.brokerCancelled(cons, brokerError(err, false))
			break
		}
		if !refused {
			return nil
		}
		ch.retire()
	}
	return errors.New("amqp: could not reopen the channel")
}

// retire ends the current generation: it is marked dead, its AMQP channel
// closed if it was not, its forwarders joined, and the next generation's
// tag offset fixed above every tag this one handed out.
func (ch *channel) retire() {
	g := ch.gen
	if g == nil || g.retired {
		return
	}
	g.dead.Store(true)
	g.retired = true
	if !g.ach.IsClosed() {
		_ = g.ach.Close() // so that the forwarders end
	}
	for _, f := range g.fwds {
		<-f.done
	}
	g.fwds = nil
	for _, cons := range ch.consumers {
		cons.fwd = nil
	}
	ch.nextOff = g.offset + g.seen.Load()
}

// closeAMQP closes the AMQP channel (the broker requeues what it had not
// got an ack for) and joins its forwarders.
func (ch *channel) closeAMQP() {
	g := ch.gen
	if g == nil || g.retired {
		return
	}
	g.dead.Store(true)
	if !g.ach.IsClosed() {
		_ = g.ach.Close()
	}
	ch.retire()
}

func (ch *channel) removeConsumer(cons *consumer) {
	for i, x := range ch.consumers {
		if x == cons {
			ch.consumers = append(ch.consumers[:i], ch.consumers[i+1:]...)
			return
		}
	}
}

// settle sends acks and rejects of this channel (executor).
func (ch *channel) settle(ops []op) {
	c := ch.c
	g := ch.gen
	if g == nil || g.retired || g.ach.IsClosed() {
		return // the broker requeues them with the channel
	}
	seen := g.seen.Load()
	var acks []uint64
	// sendAcks sends the acks gathered so far. It runs before every reject,
	// so that settlements keep their order: an Ack followed by a Reject of
	// the same tag acks (the Reject is then a double and dropped).
	sendAcks := func() bool {
		if len(acks) == 0 {
			return true
		}
		upTo, singles, dups := g.st.plan(acks)
		acks = acks[:0]
		if dups > 0 {
			c.log.Debug("amqp: deliveries acknowledged twice; dropped", "count", dups)
		}
		if upTo > 0 {
			if err := g.ach.Ack(upTo, true); err != nil {
				return false
			}
		}
		for _, t := range singles {
			if err := g.ach.Ack(t, false); err != nil {
				return false
			}
		}
		return true
	}
	for _, o := range ops {
		if o.tag <= g.offset {
			c.log.Debug("amqp: dropped the settlement of a delivery from before a channel reopen", "tag", o.tag)
			continue
		}
		t := o.tag - g.offset
		if t > seen {
			c.log.Warn("amqp: settlement of an unknown delivery tag dropped", "tag", o.tag)
			continue
		}
		if o.settle == settleAck {
			acks = append(acks, t)
			continue
		}
		if !sendAcks() {
			return
		}
		if !g.st.reject(t) {
			c.log.Debug("amqp: delivery settled twice; dropped", "tag", o.tag)
			continue
		}
		if err := g.ach.Reject(t, o.settle == settleRequeue); err != nil {
			return
		}
	}
	sendAcks()
}

// OnReturn registers fn for messages the broker returns (mandatory and
// unroutable). fn runs on the hub goroutine. A later call replaces it.
func (ch *channel) OnReturn(fn func(*transport.Returned)) {
	if fn == nil {
		ch.onReturn.Store(nil)
		return
	}
	ch.onReturn.Store(&fn)
}

// DeclareExchange declares ex on the connection's declaration channel. An
// unnamed exchange (the default exchange) is not declared, as in Kombu.
func (ch *channel) DeclareExchange(ctx context.Context, ex transport.Exchange) error {
	if ex.Name == "" {
		return nil
	}
	args, err := toTable(ex.Arguments)
	if err != nil {
		return fmt.Errorf("amqp: exchange %q arguments: %w", ex.Name, err)
	}
	c := ch.c
	return ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		if err := declareExchangeArgs(ctl, ex, args); err != nil {
			return c.ctlErr(err)
		}
		if !ex.Passive {
			c.topo.addExchange(ex)
		}
		return nil
	})
}

// DeleteExchange deletes an exchange (and forgets its bindings).
func (ch *channel) DeleteExchange(ctx context.Context, name string, ifUnused bool) error {
	c := ch.c
	return ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		if err := ctl.ExchangeDelete(name, ifUnused, false); err != nil {
			return c.ctlErr(err)
		}
		c.topo.deleteExchange(name)
		return nil
	})
}

// DeclareQueue declares q; a server-named queue (empty name) gets its name
// in the answer.
func (ch *channel) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	args, err := toTable(q.Arguments)
	if err != nil {
		return transport.QueueInfo{}, fmt.Errorf("amqp: queue %q arguments: %w", q.Name, err)
	}
	c := ch.c
	var info transport.QueueInfo
	err = ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		named := q
		named.Name = c.topo.resolve(q.Name)
		qi, err := declareQueueArgs(ctl, named, args)
		if err != nil {
			return c.ctlErr(err)
		}
		if !q.Passive {
			c.topo.addQueue(q, qi.Name)
		}
		info = transport.QueueInfo{Name: qi.Name, Messages: qi.Messages, Consumers: qi.Consumers}
		return nil
	})
	return info, err
}

// BindQueue binds a queue to an exchange.
func (ch *channel) BindQueue(ctx context.Context, b transport.Binding) error {
	args, err := toTable(b.Arguments)
	if err != nil {
		return fmt.Errorf("amqp: binding arguments: %w", err)
	}
	c := ch.c
	return ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		b.Queue = c.topo.resolve(b.Queue)
		if err := ctl.QueueBind(b.Queue, b.RoutingKey, b.Exchange, false, args); err != nil {
			return c.ctlErr(err)
		}
		c.topo.addBinding(b)
		return nil
	})
}

// UnbindQueue removes a binding.
func (ch *channel) UnbindQueue(ctx context.Context, b transport.Binding) error {
	args, err := toTable(b.Arguments)
	if err != nil {
		return fmt.Errorf("amqp: binding arguments: %w", err)
	}
	c := ch.c
	return ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		b.Queue = c.topo.resolve(b.Queue)
		if err := ctl.QueueUnbind(b.Queue, b.RoutingKey, b.Exchange, args); err != nil {
			return c.ctlErr(err)
		}
		c.topo.deleteBinding(b)
		return nil
	})
}

// BindExchange binds exchange destination to exchange source
// (exchange.bind, a RabbitMQ extension): messages source routes with
// routingKey (and args, for a headers exchange) go on to destination. The
// binding is declared again after a reconnection. It implements
// transport.ExchangeBinder.
func (ch *channel) BindExchange(ctx context.Context, destination, source, routingKey string, args map[string]any) error {
	return ch.exchangeBinding(ctx, true, destination, source, routingKey, args)
}

// UnbindExchange removes a binding made by BindExchange (exchange.unbind).
func (ch *channel) UnbindExchange(ctx context.Context, destination, source, routingKey string, args map[string]any) error {
	return ch.exchangeBinding(ctx, false, destination, source, routingKey, args)
}

func (ch *channel) exchangeBinding(ctx context.Context, bind bool, dest, src, key string, args map[string]any) error {
	table, err := toTable(args)
	if err != nil {
		return fmt.Errorf("amqp: binding arguments: %w", err)
	}
	c := ch.c
	b := transport.Binding{Queue: dest, Exchange: src, RoutingKey: key, Arguments: args}
	return ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		if bind {
			err = ctl.ExchangeBind(dest, key, src, false, table)
		} else {
			err = ctl.ExchangeUnbind(dest, key, src, false, table)
		}
		if err != nil {
			return c.ctlErr(err)
		}
		if bind {
			c.topo.addExBinding(b)
		} else {
			c.topo.deleteExBinding(b)
		}
		return nil
	})
}

// DeleteQueue deletes a queue and returns how many messages it held.
func (ch *channel) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	c := ch.c
	var n int
	err := ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		real := c.topo.resolve(name)
		if n, err = ctl.QueueDelete(real, ifUnused, ifEmpty, false); err != nil {
			return c.ctlErr(err)
		}
		c.topo.deleteQueue(real)
		return nil
	})
	return n, err
}

// PurgeQueue removes the ready messages of a queue and returns how many.
func (ch *channel) PurgeQueue(ctx context.Context, name string) (int, error) {
	c := ch.c
	var n int
	err := ch.exec(ctx, func() error {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		if n, err = ctl.QueuePurge(c.topo.resolve(name), false); err != nil {
			return c.ctlErr(err)
		}
		return nil
	})
	return n, err
}

// Publish sends m. In confirm mode (confirm_publish, or opts.Confirm for
// this message) it waits for the broker's confirmation and fails with
// ErrNacked on a nack, or with a connection or channel error if the
// channel closed first (the message may or may not have been routed). The
// first publish with opts.Confirm on a channel puts it in confirm mode for
// good; later publishes without it do not wait for their confirmation.
// opts.Immediate is not sent: RabbitMQ answers it with 540
// NOT_IMPLEMENTED, which closes the connection.
func (ch *channel) Publish(ctx context.Context, m *transport.Message, exchange, routingKey string, opts transport.PublishOptions) error {
	if m == nil {
		return errors.New("amqp: Publish of a nil message")
	}
	pub, err := toPublishing(m)
	if err != nil {
		return err
	}
	c := ch.c
	var dc *amqp091.DeferredConfirmation
	var g *chanGen
	err = ch.exec(ctx, func() error {
		if err := ch.ensure(); err != nil {
			return err
		}
		g = ch.gen
		if opts.Confirm && !c.s.ConfirmPublish && !ch.confirming {
			if err := g.ach.Confirm(false); err != nil {
				return ch.after(g, err)
			}
			ch.confirming = true
		}
		rk := routingKey
		if exchange == "" {
			rk = c.topo.resolve(rk)
		}
		var err error
		dc, err = g.ach.PublishWithDeferredConfirm(exchange, rk, opts.Mandatory, false, pub)
		return ch.after(g, err)
	})
	if err != nil || dc == nil || !(opts.Confirm || c.s.ConfirmPublish) {
		return err
	}
	done := c.expect() // read_timeout bounds the wait for the confirm
	select {
	case <-dc.Done():
	case <-ctx.Done():
		done()
		return ctx.Err()
	}
	done()
	if dc.Acked() {
		return nil
	}
	if g.ach.IsClosed() {
		return fmt.Errorf("amqp: no confirmation: %w", brokerError(amqp091.ErrClosed, g.ac.IsClosed()))
	}
	return ErrNacked
}

// Get takes one message with basic.get.
func (ch *channel) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	c := ch.c
	var m *transport.Message
	err := ch.exec(ctx, func() error {
		if err := ch.ensure(); err != nil {
			return err
		}
		g := ch.gen
		real := c.topo.resolve(queue)
		d, ok, err := g.ach.Get(real, noAck)
		if err != nil {
			return ch.after(g, err)
		}
		if !ok {
			return transport.ErrEmpty
		}
		if noAck {
			g.st.disableMulti()
		}
		g.see(d.DeliveryTag)
		m = fromDelivery(&d, g.offset+d.DeliveryTag, queue)
		return nil
	})
	return m, err
}

// Ack queues a basic.ack for the executor, which batches acks into
// multiple=true frames when that is exact. Safe from any goroutine.
func (ch *channel) Ack(deliveryTag string) error { return ch.settleTag(deliveryTag, settleAck) }

// Reject queues a basic.reject. Safe from any goroutine.
func (ch *channel) Reject(deliveryTag string, requeue bool) error {
	if requeue {
		return ch.settleTag(deliveryTag, settleRequeue)
	}
	return ch.settleTag(deliveryTag, settleReject)
}

func (ch *channel) settleTag(s string, k settleKind) error {
	if ch.closed.Load() {
		return ch.closedErr()
	}
	tag, err := strconv.ParseUint(s, 10, 64)
	if err != nil || tag == 0 {
		return fmt.Errorf("%w: %q", transport.ErrUnknownDeliveryTag, s)
	}
	if err := ch.c.usable(); err != nil {
		return err
	}
	ch.c.enqueue(op{kind: opSettle, settle: k, tag: tag, ch: ch})
	return nil
}

// Qos sets basic.qos prefetch_count with global=false, as Kombu does: on
// RabbitMQ the window applies to each consumer started afterwards. It waits
// for the broker's answer and is re-applied after a reopen.
func (ch *channel) Qos(ctx context.Context, prefetchCount int) error {
	if prefetchCount < 0 || prefetchCount > 65535 {
		return fmt.Errorf("amqp: prefetch count %d out of range 0..65535", prefetchCount)
	}
	return ch.exec(ctx, func() error {
		if err := ch.ensure(); err != nil {
			return err
		}
		g := ch.gen
		if err := g.ach.Qos(prefetchCount, 0, false); err != nil {
			return ch.after(g, err)
		}
		ch.prefetch = prefetchCount
		return nil
	})
}

// Recover asks the broker to redeliver every unacknowledged message of the
// channel (basic.recover requeue=true). The redeliveries get new tags; the
// old tags must not be settled any more.
func (ch *channel) Recover(ctx context.Context) error {
	return ch.exec(ctx, func() error {
		if err := ch.ensure(); err != nil {
			return err
		}
		g := ch.gen
		if err := g.ach.Recover(true); err != nil {
			return ch.after(g, err)
		}
		g.st.disableMulti()
		return nil
	})
}

// Flow sends channel.flow. Only active=true is sent: RabbitMQ answers
// channel.flow(active=false) with 540 NOT_IMPLEMENTED, a connection error,
// so Flow(false) returns an error matching transport.ErrUnsupported.
func (ch *channel) Flow(ctx context.Context, active bool) error {
	if !active {
		return fmt.Errorf("amqp: channel.flow(active=false) (RabbitMQ closes the connection with 540 NOT_IMPLEMENTED): %w",
			transport.ErrUnsupported)
	}
	return ch.exec(ctx, func() error {
		if err := ch.ensure(); err != nil {
			return err
		}
		g := ch.gen
		return ch.after(g, g.ach.Flow(true))
	})
}

// Close closes the AMQP channel after the acks queued before it: the broker
// requeues the messages still unacknowledged, and the consumers end. It
// does not need the hub. Idempotent.
func (ch *channel) Close() error {
	if !ch.closed.CompareAndSwap(false, true) {
		return nil
	}
	c := ch.c
	ctx, cancel := context.WithTimeout(context.Background(), c.s.CloseTimeout)
	defer cancel()
	err := c.do(ctx, func() error {
		c.dropChannel(ch)
		return nil
	})
	if err != nil && c.usable() != nil {
		return nil // the connection is closed or failed: so is the channel
	}
	if err != nil && ctx.Err() != nil {
		// The executor is busy (a recovery, a blocked socket): close the
		// AMQP channel when it gets there.
		c.enqueue(op{kind: opEvent, ev: func() { c.dropChannel(ch) }})
		return fmt.Errorf("amqp: channel close still pending: %w", ctx.Err())
	}
	return err
}

func declareExchangeArgs(ctl *amqp091.Channel, ex transport.Exchange, args amqp091.Table) error {
	kind := ex.Type
	if kind == "" {
		kind = transport.Direct
	}
	if ex.Passive {
		return ctl.ExchangeDeclarePassive(ex.Name, kind, ex.Durable, ex.AutoDelete, ex.Internal, false, args)
	}
	return ctl.ExchangeDeclare(ex.Name, kind, ex.Durable, ex.AutoDelete, ex.Internal, false, args)
}

func declareQueueArgs(ctl *amqp091.Channel, q transport.Queue, args amqp091.Table) (amqp091.Queue, error) {
	if q.Passive {
		return ctl.QueueDeclarePassive(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, args)
	}
	return ctl.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, args)
}
