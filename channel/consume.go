package channel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// reqKind is the kind of a request queued for the hub.
type reqKind uint8

const (
	reqAck reqKind = iota + 1
	reqReject
	reqRequeue
	reqGot // a basic_get delivery to record as unacknowledged
	reqConsume
	reqCancel
	reqQos
	reqRecover
)

// request is one call made on another goroutine, for the hub to apply.
type request struct {
	kind reqKind
	n    int
	tag  string
	msg  *transport.Message
	cons *consumer
}

// consumer is one basic_consume.
type consumer struct {
	tag   string
	queue string
	noAck bool
	fn    transport.DeliverFunc
	// cancelled is set by Cancel on the caller's goroutine, so that no
	// delivery reaches the consumer once Cancel has returned, even before
	// the hub has applied the cancel.
	cancelled atomic.Bool
}

// queueConsumers are the consumers of one queue; deliveries go round robin.
type queueConsumers struct {
	list []*consumer
	next int
}

// enqueue queues a request for the hub and has the inbox applied (kick).
func (c *Channel) enqueue(r request) error {
	c.mu.Lock()
	if c.sealed {
		c.mu.Unlock()
		return fmt.Errorf("channel: %w", transport.ErrClosed)
	}
	c.inbox = append(c.inbox, r)
	c.mu.Unlock()
	c.kick()
	return nil
}

// kick has the inbox applied. When no goroutine drives the hub (a
// synchronous Get and Ack loop), the caller applies it at once as the
// hub's owner (hub.TryOwn), running nothing else of the loop: the
// settlements reach the store now, and any delivery they make possible
// waits for whoever drives the hub next. Otherwise (the hub is driven, or
// this is a hub callback) the driver applies it in its next turn.
func (c *Channel) kick() {
	if c.h.TryOwn(c.applyOwned) {
		return
	}
	c.postFlush(false)
}

// postFlush posts the flush, unless one is posted and not yet run: a
// channel has at most one flush waiting in the hub, however many requests
// come in before the hub turns, and none while nobody drives the hub and
// the callers apply their requests themselves. force posts it for a
// deferred resume even with an empty inbox.
func (c *Channel) postFlush(force bool) {
	c.mu.Lock()
	post := !c.flushPosted && (force || len(c.inbox) > 0)
	if post {
		c.flushPosted = true
	}
	c.mu.Unlock()
	if post {
		c.h.Post(c.flush)
	}
}

// Ack acknowledges a delivery. It returns at once: the hub settles every
// acknowledgement of a turn in one batch. A tag this channel does not hold
// is still handed to the store (Kombu's Redis QoS settles any tag). Safe for
// concurrent use.
func (c *Channel) Ack(deliveryTag string) error {
	if deliveryTag == "" {
		return fmt.Errorf("channel: ack: %w", transport.ErrUnknownDeliveryTag)
	}
	return c.enqueue(request{kind: reqAck, tag: deliveryTag})
}

// Reject rejects a delivery: with requeue the message goes back to the end
// of its queue and is delivered again with Redelivered set; without, it is
// dropped. Asynchronous, like Ack. Safe for concurrent use.
func (c *Channel) Reject(deliveryTag string, requeue bool) error {
	if deliveryTag == "" {
		return fmt.Errorf("channel: reject: %w", transport.ErrUnknownDeliveryTag)
	}
	k := reqReject
	if requeue {
		k = reqRequeue
	}
	return c.enqueue(request{kind: k, tag: deliveryTag})
}

// Consume starts a consumer of opts.Queue and returns its tag (generated
// when opts.ConsumerTag is empty). It returns as soon as the consumer is
// registered; the hub starts delivering to fn in its next turn. A tag
// already in use on this channel gives [ErrConsumerTagInUse]. As in Kombu,
// the queue need not exist yet. Safe for concurrent use, also from a hub
// callback.
func (c *Channel) Consume(ctx context.Context, opts transport.ConsumeOptions, fn transport.DeliverFunc) (string, error) {
	if fn == nil {
		return "", fmt.Errorf("channel: consume with a nil callback")
	}
	if err := c.check(); err != nil {
		return "", err
	}
	cons := &consumer{queue: opts.Queue, noAck: opts.NoAck, fn: fn, tag: opts.ConsumerTag}
	c.mu.Lock()
	if c.sealed {
		c.mu.Unlock()
		return "", fmt.Errorf("channel: %w", transport.ErrClosed)
	}
	if cons.tag == "" {
		for {
			c.nextID++
			cons.tag = "amq.ctag-" + strconv.FormatUint(c.nextID, 10)
			if c.tags[cons.tag] == nil {
				break
			}
		}
	} else if c.tags[cons.tag] != nil {
		c.mu.Unlock()
		return "", fmt.Errorf("channel: consumer tag %q: %w", cons.tag, ErrConsumerTagInUse)
	}
	c.tags[cons.tag] = cons
	c.inbox = append(c.inbox, request{kind: reqConsume, cons: cons})
	c.mu.Unlock()
	c.postFlush(false)
	return cons.tag, nil
}

// Cancel stops a consumer. Once Cancel returns, its callback receives no
// further delivery; messages already delivered stay unacknowledged until
// settled. Unknown tags are ignored. Safe for concurrent use, also from a
// hub callback.
func (c *Channel) Cancel(ctx context.Context, consumerTag string) error {
	c.mu.Lock()
	cons := c.tags[consumerTag]
	if cons == nil || c.sealed {
		c.mu.Unlock()
		return nil
	}
	delete(c.tags, consumerTag)
	cons.cancelled.Store(true)
	c.inbox = append(c.inbox, request{kind: reqCancel, cons: cons})
	c.mu.Unlock()
	c.kick()
	return nil
}

// Qos sets the prefetch window (0: unlimited). Asynchronous: the hub
// applies it in order with the acknowledgements. Safe for concurrent use.
func (c *Channel) Qos(ctx context.Context, prefetchCount int) error {
	if prefetchCount < 0 {
		return fmt.Errorf("channel: negative prefetch count %d", prefetchCount)
	}
	return c.enqueue(request{kind: reqQos, n: prefetchCount})
}

// Recover gives every unacknowledged message of the channel back to its
// queue, where it is consumed next with Redelivered set (basic_recover with
// requeue; Kombu's restore_unacked). Asynchronous. Safe for concurrent use.
func (c *Channel) Recover(ctx context.Context) error {
	return c.enqueue(request{kind: reqRecover})
}

// runInbox is the posted flush: it applies the queued requests on the hub
// goroutine.
func (c *Channel) runInbox() { c.apply(true) }

// applyOwned applies the queued requests on a goroutine that owns the hub
// through hub.TryOwn and drives nothing: see kick.
func (c *Channel) applyOwned() { c.apply(false) }

// apply applies the queued requests in order, hands the settlements to the
// store in one batch, and tells the store of a changed set of consumed
// queues. Then, if the prefetch window opened (or the consumers or the
// window changed), it has the channel pull (or the store resume): at once
// on the hub, since a pull delivers and a delivery runs a callback; on a
// goroutine that only owns the hub (onHub false), by the hub's next turn.
// Called by the hub's owner only.
func (c *Channel) apply(onHub bool) {
	c.mu.Lock()
	reqs := c.inbox
	c.inbox = c.spare[:0]
	if onHub {
		c.flushPosted = false
	}
	c.mu.Unlock()
	if c.released {
		return
	}
	before := c.qos.room()
	resume, changed := false, false
	for i := range reqs {
		r := &reqs[i]
		switch r.kind {
		case reqAck, reqReject, reqRequeue:
			op := OpAck
			if r.kind == reqReject {
				op = OpDrop
			} else if r.kind == reqRequeue {
				op = OpRequeue
			}
			c.batch = append(c.batch, Settlement{Op: op, Tag: r.tag, Message: c.qos.take(r.tag)})
		case reqGot:
			c.qos.append(r.tag, r.msg)
		case reqConsume:
			c.addConsumer(r.cons)
			changed = true
		case reqCancel:
			c.removeConsumer(r.cons)
			changed = true
		case reqQos:
			c.qos.prefetch = r.n
			resume = true
		case reqRecover:
			c.restoreAll()
		}
		*r = request{}
	}
	c.spare = reqs[:0]
	c.settle()
	if changed {
		c.st.Consuming(c.active)
		resume = true
	}
	due := resume || before == 0
	if !onHub {
		if due && c.qos.room() > 0 {
			c.resumeDue = true
			c.postFlush(true)
		}
		return
	}
	due = due || c.resumeDue
	c.resumeDue = false
	if due && c.qos.room() > 0 {
		if c.pull != nil {
			c.pullAll()
		} else {
			c.st.Resume()
		}
	}
}

// settle hands the accumulated settlements to the store.
func (c *Channel) settle() error {
	if len(c.batch) == 0 {
		return nil
	}
	err := c.st.Settle(c.batch)
	if err != nil {
		c.log.Error("channel: settling deliveries failed", "count", len(c.batch), "err", err)
	}
	clear(c.batch)
	c.batch = c.batch[:0]
	return err
}

// restoreAll queues an OpRestore for every unacknowledged delivery, most
// recent first.
func (c *Channel) restoreAll() {
	c.qos.drain(func(tag string, m *transport.Message) {
		c.batch = append(c.batch, Settlement{Op: OpRestore, Tag: tag, Message: m})
	})
}

func (c *Channel) addConsumer(cons *consumer) {
	if cons.cancelled.Load() {
		return // cancelled before the hub saw it
	}
	qc := c.consumed[cons.queue]
	if qc == nil {
		qc = &queueConsumers{}
		c.consumed[cons.queue] = qc
		c.active = append(c.active, cons.queue)
		c.cycle.Update(c.active)
	}
	qc.list = append(qc.list, cons)
}

func (c *Channel) removeConsumer(cons *consumer) {
	qc := c.consumed[cons.queue]
	if qc == nil {
		return
	}
	for i, x := range qc.list {
		if x == cons {
			qc.list = append(qc.list[:i:i], qc.list[i+1:]...)
			break
		}
	}
	if len(qc.list) > 0 {
		return
	}
	delete(c.consumed, cons.queue)
	for i, q := range c.active {
		if q == cons.queue {
			c.active = append(c.active[:i:i], c.active[i+1:]...)
			break
		}
	}
	c.cycle.Update(c.active)
}

// pick returns the consumer the next delivery from queue goes to, or nil.
func (c *Channel) pick(queue string) *consumer {
	qc := c.consumed[queue]
	if qc == nil {
		return nil
	}
	for range qc.list {
		if qc.next >= len(qc.list) {
			qc.next = 0
		}
		cons := qc.list[qc.next]
		qc.next++
		if !cons.cancelled.Load() {
			return cons
		}
	}
	return nil
}

// Room returns how many more deliveries the prefetch window admits
// ([Unlimited] without a limit). Hub goroutine only.
func (c *Channel) Room() int {
	if c.released {
		return 0
	}
	return c.qos.room()
}

// CanConsume reports whether the channel has consumers and room in its
// prefetch window (Kombu's qos.can_consume, plus active queues). Hub
// goroutine only.
func (c *Channel) CanConsume() bool { return len(c.active) > 0 && c.Room() > 0 }

// NoAck reports whether the next delivery from queue goes to a no-ack
// consumer, whose deliveries are not recorded as unacknowledged (Redis
// writes no unacked record for it). Hub goroutine only.
func (c *Channel) NoAck(queue string) bool {
	qc := c.consumed[queue]
	if qc == nil {
		return false
	}
	// pick's choice, without moving on: the next consumer not cancelled.
	start := qc.next
	if start >= len(qc.list) {
		start = 0
	}
	for k := range qc.list {
		cons := qc.list[(start+k)%len(qc.list)]
		if !cons.cancelled.Load() {
			return cons.noAck
		}
	}
	return false
}

// Deliver hands a message taken from queue to the queue's consumer (Kombu's
// _deliver), on the hub goroutine. The channel sets DeliveryInfo.Queue and
// ConsumerTag, gives the message a delivery tag if it has none (a
// malformed message), records it as unacknowledged unless the consumer is
// no-ack, and calls the consumer's callback. A message with Err set is
// delivered like any other. When no consumer takes the queue (cancelled
// meanwhile, or the channel is closing) the message is recorded and
// requeued at once (Kombu's _reject_inbound_message), so it is not lost.
// Deliver does not check the prefetch window: pushing stores stay within
// [Channel.Room] themselves. A store that keeps records of its messages
// hears of a no-ack taker before the callback runs ([NoAckTaker]).
func (c *Channel) Deliver(queue string, m *transport.Message) {
	if m == nil {
		return
	}
	if m.DeliveryInfo.DeliveryTag == "" {
		m.DeliveryInfo.DeliveryTag = NewDeliveryTag()
	}
	m.DeliveryInfo.Queue = queue
	if c.released {
		c.log.Error("channel: message delivered after close is lost", "queue", queue,
			"delivery_tag", m.DeliveryInfo.DeliveryTag)
		return
	}
	cons := c.pick(queue)
	if cons == nil {
		c.log.Warn("channel: requeuing undeliverable message: no consumers", "queue", queue)
		c.one[0] = Settlement{Op: OpRequeue, Tag: m.DeliveryInfo.DeliveryTag, Message: m}
		if err := c.st.Settle(c.one[:]); err != nil {
			c.log.Error("channel: requeue failed", "queue", queue, "err", err)
		}
		c.one[0] = Settlement{}
		return
	}
	m.DeliveryInfo.ConsumerTag = cons.tag
	if !cons.noAck {
		c.qos.append(m.DeliveryInfo.DeliveryTag, m)
	} else if c.noAckTaker != nil {
		c.noAckTaker.TakenNoAck(m)
	}
	cons.fn(m)
}

// Wake tells the channel that messages may be ready in the queues it
// consumes; a pulling channel then pulls in the hub's next turn. Many calls
// before that turn cost one hub.Post. Safe for concurrent use: stores call
// it from the publisher's goroutine.
func (c *Channel) Wake() {
	if c.pull == nil || c.wake.Load() || !c.wake.CompareAndSwap(false, true) {
		return
	}
	c.h.Post(c.pump)
}

func (c *Channel) pullPosted() {
	c.wake.Store(false)
	c.pullAll()
}

// maxPullPerTurn bounds the deliveries of one pullAll, so that an unlimited
// window over a busy queue still lets the hub do its other work.
const maxPullPerTurn = 1024

// pullAll takes messages from the consumed queues, in turn, while the
// prefetch window has room.
func (c *Channel) pullAll() {
	if c.pull == nil || c.pulling || c.released {
		return
	}
	c.pulling = true
	defer c.endPull()
	if cap(c.pullBuf) < c.opts.PullBatch {
		c.pullBuf = make([]*transport.Message, c.opts.PullBatch)
	}
	for total := 0; len(c.active) > 0; {
		room := c.qos.room()
		if room == 0 {
			return
		}
		if total >= maxPullPerTurn {
			c.h.CallSoon(c.pump) // more next turn
			c.wake.Store(true)
			return
		}
		n := min(room, len(c.pullBuf), maxPullPerTurn-total)
		got := 0
		_, ok := c.cycle.Next(func(q string) bool {
			got = c.pull.Pull(q, c.pullBuf[:n])
			for i := 0; i < got; i++ {
				c.pullBuf[i].DeliveryInfo.Queue = q
			}
			for i := 0; i < got; i++ {
				m := c.pullBuf[i]
				c.pullBuf[i] = nil
				c.Deliver(q, m)
			}
			return got > 0
		})
		if !ok {
			return
		}
		total += got
	}
}

// endPull ends pullAll. When a delivery callback panicked (the hub
// recovers it), the messages pulled with it and not yet delivered are given
// back to the front of their queue in their order, not lost.
func (c *Channel) endPull() {
	c.pulling = false
	for i := len(c.pullBuf) - 1; i >= 0; i-- {
		if m := c.pullBuf[i]; m != nil {
			c.pullBuf[i] = nil
			c.batch = append(c.batch, Settlement{Op: OpRestore, Tag: m.DeliveryInfo.DeliveryTag, Message: m})
		}
	}
	c.settle()
}

// Close cancels the consumers, settles the pending acknowledgements,
// gives every unacknowledged message back to its queue (unless
// Options.NoRestoreOnClose) and closes the store. It runs on the hub
// through hub.Call (driving the hub meanwhile if nobody does); if the hub
// is closed it runs on the caller's goroutine once the hub is done. A
// store that finishes its work off the hub ([CloseWaiter]) is waited for
// on the caller's goroutine, with the hub free meanwhile. Idempotent:
// later calls wait for the first and return its result.
//
// Close waits for the hub, so a hub callback must not call it: there
// (hub.InCallback) it returns an error matching hub.ErrInCallback at once
// and closes nothing. Cancel the consumers from the callback instead, and
// close the channel from another goroutine.
func (c *Channel) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("channel: close: %w", hub.ErrInCallback)
	}
	if !c.closed.CompareAndSwap(false, true) {
		<-c.done
		return c.err
	}
	defer close(c.done)
	run := func() { c.err = c.shutdown() }
	if err := c.h.Call(context.Background(), run); err != nil {
		if !errors.Is(err, hub.ErrClosed) {
			c.err = fmt.Errorf("channel: close: %w", err)
			return c.err
		}
		<-c.h.Done() // nobody touches the hub state any more
		run()
	}
	if w, ok := c.st.(CloseWaiter); ok {
		c.err = errors.Join(c.err, w.WaitClose())
	}
	return c.err
}

// shutdown is Close on the hub goroutine.
func (c *Channel) shutdown() error {
	if c.released {
		return nil
	}
	c.mu.Lock()
	c.sealed = true
	reqs := c.inbox
	c.inbox = nil
	for _, cons := range c.tags {
		cons.cancelled.Store(true)
	}
	clear(c.tags)
	c.mu.Unlock()

	hadConsumers := len(c.active) > 0
	clear(c.consumed)
	c.active = c.active[:0]
	c.cycle.Update(nil)
	if hadConsumers {
		c.st.Consuming(nil) // a pushing store may Deliver an in-flight message here
	}
	for _, r := range reqs {
		switch r.kind {
		case reqAck:
			c.batch = append(c.batch, Settlement{Op: OpAck, Tag: r.tag, Message: c.qos.take(r.tag)})
		case reqReject:
			c.batch = append(c.batch, Settlement{Op: OpDrop, Tag: r.tag, Message: c.qos.take(r.tag)})
		case reqRequeue:
			c.batch = append(c.batch, Settlement{Op: OpRequeue, Tag: r.tag, Message: c.qos.take(r.tag)})
		case reqGot:
			c.qos.append(r.tag, r.msg)
		}
	}
	if c.opts.NoRestoreOnClose {
		c.qos.drain(func(string, *transport.Message) {})
	} else {
		c.restoreAll()
	}
	err := c.settle()
	c.released = true
	return errors.Join(err, c.st.Close())
}
