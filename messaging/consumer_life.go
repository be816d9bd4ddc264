package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// A consumer's lifecycle (compare nats.go's ConsumeContext): Close stops
// its deliveries, Drain also finishes the work in flight, and Done and Err
// say when and why it stopped consuming.
//
// To drain, the consumer keeps the messages it still has business with
// ("held"): a message that needs an acknowledgement from its delivery until
// it is settled, by a callback, a Workers pool or any goroutine; a no-ack
// message until its callbacks have returned. A drained consumer has no
// callback running and no held message.

// lifeState says what a consumer does with the deliveries it gets.
type lifeState uint8

const (
	// lifeOpen: deliveries reach the callbacks.
	lifeOpen lifeState = iota
	// lifeDraining: Drain was called. A message that needs an
	// acknowledgement and has not reached a callback yet goes back to the
	// broker; a no-ack message, which cannot go back, still reaches the
	// callbacks.
	lifeDraining
	// lifeClosed: Close was called, or Drain ended: nothing reaches the
	// callbacks any more. No-ack messages are dropped (and logged).
	lifeClosed
)

// drainRetry is how often Drain tries again to drive the hub while another
// goroutine drives it (that driver may return without the work being done).
const drainRetry = 50 * time.Millisecond

// consumerRun is one period of consuming, from the Consume that started it
// to the event that ended it.
type consumerRun struct {
	done    chan struct{}
	err     error          // why it ended; set just before done is closed
	tc      transport.Conn // the transport connection it consumes on; nil before Consume
	wanted  bool           // Done was called: watch tc once it is known
	watched bool           // a goroutine waits for tc to end
}

// consumerLife is the lifecycle state of a Consumer. Lock order: a
// message's mu, then mu (settled runs under the message's lock); with mu
// held, nothing is called out except closing channels.
type consumerLife struct {
	mu      sync.Mutex
	state   lifeState
	running int               // callbacks of this consumer running now, on the hub
	held    map[*Message]bool // held messages; true once handed to a callback
	idle    chan struct{}     // closed at the next change of running or held while stopping
	h       *hub.Hub          // the hub the deliveries run on (set by Consume)
	run     *consumerRun
	// watchers counts the goroutines Done started; Close and Drain join them.
	watchers sync.WaitGroup
	// settled is the consumer's settled method, made once: every message
	// that needs an acknowledgement gets it as its afterSettle hook.
	settled func(*Message)
}

func newConsumerRun() *consumerRun { return &consumerRun{done: make(chan struct{})} }

// Done returns a channel that is closed when the consumer stops consuming:
// after Close, Drain or Cancel (Err is then [ErrStopped]), when its
// Connection is closed ([ErrClosed]), when the transport connection it
// consumes on is lost for good or replaced by a reconnection (a connection
// error, see transport.IsConnectionError), or when the broker cancels one
// of its queue consumers by itself (a [*CancelledByBrokerError]: RabbitMQ
// does when the queue is deleted, or loses the replica it was consumed
// on). A consumer that stopped for one of the last three reasons, or after
// Cancel, can consume again: the next Consume revives it (on the
// connection's new default channel after a reconnection; with its queues
// declared again after a cancel by the broker), and Done then returns a
// new channel. After Close and Drain it cannot.
//
// After a cancel by the broker, the messages the consumer was given stay
// its own to settle (the channel is still open); its other queue consumers
// are cancelled on a goroutine of their own, shortly after Done is closed
// (deliveries already under way still reach the callbacks, as after
// Cancel); and the error is also returned by the connection's next
// DrainEvents, as py-amqp raises ConsumerCancelled from drain_events.
// Transports whose brokers never cancel a consumer (memory, Redis: Kombu's
// virtual transports keep consuming a deleted queue's name, and deliver
// again once it is declared and fed) never end a run this way.
//
// The first call while the consumer consumes starts a goroutine that waits
// for the transport connection to end; it ends with the consumer's
// consuming, and Close and Drain join it (as they join the one cancelling
// the other queue consumers after a cancel by the broker).
func (c *Consumer) Done() <-chan struct{} {
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	r := c.life.run
	c.checkLocked(r)
	r.wanted = true
	c.watchLocked(r)
	return r.done
}

// watchLocked starts the goroutine that ends r with its transport
// connection, once Done asked for it and the connection is known.
func (c *Consumer) watchLocked(r *consumerRun) {
	if r.wanted && r.tc != nil && r.err == nil && !r.watched {
		r.watched = true
		c.life.watchers.Add(1)
		go c.watch(r) // joined by Close and Drain; ends with r
	}
}

// Err returns nil while the consumer consumes (or has not started), and
// once Done is closed, why it stopped: [ErrStopped] after Close, Drain or
// Cancel; [ErrClosed] when its Connection was closed; a connection error
// when the transport connection it consumed on was lost or replaced; a
// [*CancelledByBrokerError] (matching [ErrCancelledByBroker]) when the
// broker cancelled one of its queue consumers.
func (c *Consumer) Err() error {
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	c.checkLocked(c.life.run)
	return c.life.run.err
}

// watch ends r when its transport connection ends.
func (c *Consumer) watch(r *consumerRun) {
	defer c.life.watchers.Done()
	select {
	case <-r.tc.Done():
		c.life.mu.Lock()
		c.endLocked(r, c.lossError(r.tc))
		c.life.mu.Unlock()
	case <-r.done:
	}
}

// checkLocked ends r if its transport connection has ended.
func (c *Consumer) checkLocked(r *consumerRun) {
	if r.err == nil && r.tc != nil && r.tc.Err() != nil {
		c.endLocked(r, c.lossError(r.tc))
	}
}

// lossError says why a run ended with its transport connection.
func (c *Consumer) lossError(tc transport.Conn) error {
	if c.conn.closing.Load() {
		return ErrClosed
	}
	return lostError(tc.Err())
}

// endLocked ends r with err, unless it has ended already.
func (c *Consumer) endLocked(r *consumerRun, err error) {
	if r.err != nil {
		return
	}
	r.err = err
	close(r.done)
}

// openErr returns ErrStopped once the consumer was closed or drained.
func (c *Consumer) openErr() error {
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	if c.life.state != lifeOpen {
		return fmt.Errorf("messaging: consumer: %w", ErrStopped)
	}
	return nil
}

// startRun records that the consumer consumes on the connection's current
// transport connection, through h, and returns the run the queue
// consumers Consume starts belong to. A run that ended (or consumed on
// another transport connection, now replaced) gives way to a new one.
// Called by Consume with c.opMu held.
func (c *Consumer) startRun(h *hub.Hub) *consumerRun {
	c.conn.mu.Lock()
	tc := c.conn.tconn
	c.conn.mu.Unlock()
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	c.life.h = h
	r := c.life.run
	if r.tc != nil && r.tc != tc {
		c.endLocked(r, c.lossError(r.tc))
	}
	if r.err != nil {
		r = newConsumerRun()
		c.life.run = r
	}
	if tc == nil {
		c.endLocked(r, lostError(nil))
		return r
	}
	r.tc = tc
	c.watchLocked(r)
	return r
}

// brokerEnded reports whether the current run ended with a cancel by the
// broker.
func (c *Consumer) brokerEnded() bool {
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	return errors.Is(c.life.run.err, ErrCancelledByBroker)
}

// onBrokerCancel returns the transport's OnCancel for the consumer of
// queue started in run r. On the hub, it ends r (the first cancel of a
// run is reported to DrainEvents, as py-amqp raises ConsumerCancelled
// from drain_events) and has the run's other queue consumers cancelled,
// so that a consumer whose Done is closed consumes nothing.
func (c *Consumer) onBrokerCancel(r *consumerRun, queue string) func(tag string, err error) {
	return func(tag string, cause error) {
		err := &CancelledByBrokerError{Queue: queue, ConsumerTag: tag, Err: cause}
		c.conn.log.Warn("messaging: the broker cancelled a consumer", "queue", queue, "consumer_tag", tag, "err", cause)
		c.life.mu.Lock()
		first := r.err == nil
		c.endLocked(r, err)
		if first {
			c.life.watchers.Add(1)
			go c.cancelRest(r) // joined by Close and Drain; ends by itself
		}
		c.life.mu.Unlock()
		if first {
			c.conn.report(err)
		}
	}
}

// cancelRestTimeout bounds cancelRest's wait for the broker.
const cancelRestTimeout = 30 * time.Second

// cancelRest cancels the queue consumers still running in r after the
// broker ended one of them; a Consume that started a new run since then
// restarted them already. Off the hub: an AMQP cancel waits for the
// broker.
func (c *Consumer) cancelRest(r *consumerRun) {
	defer c.life.watchers.Done()
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.life.mu.Lock()
	current := c.life.run == r
	c.life.mu.Unlock()
	if !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelRestTimeout)
	defer cancel()
	if err := c.cancelLocked(ctx); err != nil {
		c.conn.log.Warn("messaging: cannot cancel the other queue consumers of a consumer the broker cancelled",
			"err", err)
	}
}

// endRun ends the current run with err. Called with c.opMu held.
func (c *Consumer) endRun(err error) {
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	c.endLocked(c.life.run, err)
}

// admit takes a delivery in, on the hub goroutine, before anything else
// sees it. It reports whether the message may go on; a refused message was
// handed back.
func (c *Consumer) admit(m *Message) bool {
	if !m.noAck {
		m.mu.Lock()
		m.afterSettle = c.life.settled
		m.mu.Unlock()
	}
	c.life.mu.Lock()
	st := c.life.state
	if st == lifeOpen || (st == lifeDraining && m.noAck) {
		if c.life.held == nil {
			c.life.held = map[*Message]bool{}
		}
		c.life.held[m] = false
		c.life.mu.Unlock()
		return true
	}
	c.life.mu.Unlock()
	c.refuse(m)
	return false
}

// enter is called on the hub before m is handed to the callbacks, and
// reports whether it may be; leave follows when they have returned.
func (c *Consumer) enter(m *Message) bool {
	c.life.mu.Lock()
	st := c.life.state
	ok := st == lifeOpen || (st == lifeDraining && m.noAck)
	if ok {
		c.life.running++
		if _, in := c.life.held[m]; in {
			c.life.held[m] = true
		}
	}
	c.life.mu.Unlock()
	if !ok {
		c.refuse(m)
	}
	return ok
}

func (c *Consumer) leave(m *Message) {
	c.life.mu.Lock()
	c.life.running--
	if m.noAck {
		delete(c.life.held, m)
	}
	h := c.changedLocked()
	c.life.mu.Unlock()
	wake(h)
}

// refuse hands back a message that arrived after Close or Drain and never
// reached a callback: it goes back to its queue, or, a no-ack message that
// cannot, is dropped and logged.
func (c *Consumer) refuse(m *Message) {
	if m.noAck {
		c.conn.log.Warn("messaging: dropping a no-ack message delivered after the consumer was closed",
			"queue", m.DeliveryInfo.Queue, "delivery_tag", m.DeliveryTag())
		c.life.mu.Lock()
		delete(c.life.held, m)
		h := c.changedLocked()
		c.life.mu.Unlock()
		wake(h)
		return
	}
	if err := m.Requeue(); err != nil && !errors.Is(err, ErrMessageState) {
		c.conn.log.Warn("messaging: cannot requeue a message delivered after the consumer was stopped",
			"queue", m.DeliveryInfo.Queue, "delivery_tag", m.DeliveryTag(), "err", err)
	}
}

// settled forgets a message that was settled (or whose settlement was
// attempted). Called under m.mu, from any goroutine.
func (c *Consumer) settled(m *Message) {
	c.life.mu.Lock()
	_, in := c.life.held[m]
	delete(c.life.held, m)
	var h *hub.Hub
	if in {
		h = c.changedLocked()
	}
	c.life.mu.Unlock()
	wake(h)
}

// changedLocked tells a waiting Drain that running or held went down, and
// returns the hub to wake (a Drain driving it re-checks between turns), or
// nil while the consumer is open.
func (c *Consumer) changedLocked() *hub.Hub {
	if c.life.state == lifeOpen {
		return nil
	}
	if c.life.idle != nil {
		close(c.life.idle)
		c.life.idle = nil
	}
	return c.life.h
}

func wake(h *hub.Hub) {
	if h != nil {
		h.Wake()
	}
}

// drained reports whether no callback runs and no message is held. Once
// the hub or the connection is closed, messages that never reached a
// callback no longer count: they cannot reach one, and the transport gave
// them back to the broker when it closed.
func (c *Consumer) drained() bool {
	c.life.mu.Lock()
	defer c.life.mu.Unlock()
	return c.drainedLocked()
}

func (c *Consumer) drainedLocked() bool {
	if c.life.running > 0 {
		return false
	}
	if len(c.life.held) == 0 {
		return true
	}
	gone := c.conn.closing.Load() || (c.life.h != nil && hubClosed(c.life.h))
	for _, dispatched := range c.life.held {
		if dispatched || !gone {
			return false
		}
	}
	return true
}

func hubClosed(h *hub.Hub) bool {
	select {
	case <-h.Done():
		return true
	default:
		return false
	}
}

// Close stops the consumer for good (Kombu's close, and nats.go's Stop): no
// callback starts after Close returns (one running may finish), and the
// broker consumers are cancelled. Close does not wait for the work in
// flight: messages already handed to callbacks stay theirs to settle, and
// messages that arrive later, never seen by a callback, go back to the
// broker (a no-ack message cannot: it is dropped and logged). Use Drain to
// wait for the work in flight. Done is closed and Err returns
// [ErrStopped]; a later Consume returns ErrStopped. Idempotent.
//
// On AMQP Close waits for the broker to confirm the cancel. Like the other
// methods, it must not be called from a hub callback.
func (c *Consumer) Close() error {
	err := c.halt(context.Background(), lifeClosed)
	c.life.watchers.Wait()
	return err
}

// Drain stops the consumer for good and finishes its work in flight (nats's
// Drain, http.Server's Shutdown): it stops deliveries as Close does
// (messages that arrive meanwhile go back to the broker; no-ack ones, which
// cannot, still reach the callbacks), waits until no callback of the
// consumer runs and every message it delivered is settled (by the
// callbacks, or later by a [Workers] pool or any goroutine they handed it
// to), and until the settlements are handed to the transport. It drives
// the connection's hub while it waits when nobody else does.
//
// If ctx ends first, Drain gives every message still unsettled back to the
// broker (Requeue; a later settlement of one fails with a
// [*MessageStateError]) and returns ctx.Err(): nothing is lost, though a
// handler that finishes later may have done its work twice. Either way the
// consumer holds no message it could still settle when Drain returns, and
// Done is closed ([ErrStopped]).
//
// Never call Drain from a hub callback: it would wait for the callback.
// A callback that blocks the hub delays Drain past its deadline.
func (c *Consumer) Drain(ctx context.Context) error {
	err := c.halt(ctx, lifeDraining)
	return errors.Join(err, c.finishDrain(ctx))
}

// halt stops deliveries (to lifeDraining or lifeClosed, never back),
// ends the run and cancels the broker consumers.
func (c *Consumer) halt(ctx context.Context, to lifeState) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.life.mu.Lock()
	c.life.state = max(c.life.state, to)
	c.endLocked(c.life.run, ErrStopped)
	c.life.mu.Unlock()
	return c.cancelLocked(ctx)
}

// finishDrain is Drain after halt: wait, give back what is left if ctx
// ends, hand the settlements to the transport, and close.
func (c *Consumer) finishDrain(ctx context.Context) error {
	defer c.life.watchers.Wait()
	defer func() {
		c.life.mu.Lock()
		c.life.state = lifeClosed
		c.life.mu.Unlock()
	}()
	if err := c.await(ctx); err != nil {
		c.giveBack()
		return err
	}
	c.life.mu.Lock()
	h := c.life.h
	c.life.mu.Unlock()
	if h == nil {
		return nil
	}
	// The settlements made on other goroutines are queued for the hub;
	// a call runs after them.
	if err := h.Call(ctx, func() {}); err != nil && !errors.Is(err, hub.ErrClosed) {
		return err
	}
	return nil
}

// await waits until the consumer is drained, driving the hub when nobody
// else does, or until ctx ends.
func (c *Consumer) await(ctx context.Context) error {
	for {
		c.life.mu.Lock()
		if c.drainedLocked() {
			c.life.mu.Unlock()
			return nil
		}
		if c.life.idle == nil {
			c.life.idle = make(chan struct{})
		}
		changed, h := c.life.idle, c.life.h
		c.life.mu.Unlock()
		var retry *time.Timer
		if h != nil && !hubClosed(h) {
			err := h.Drive(ctx, c.drained)
			switch {
			case err == nil:
				continue
			case errors.Is(err, hub.ErrRunning):
				// Another goroutine drives the hub: wait for the news,
				// and try again now and then in case it stops.
				retry = time.NewTimer(drainRetry)
			case errors.Is(err, hub.ErrClosed):
			case ctx.Err() != nil:
				return ctx.Err()
			default:
				return fmt.Errorf("messaging: drain: %w", err)
			}
		}
		if err := waitChange(ctx, changed, retry); err != nil {
			return err
		}
	}
}

// waitChange waits for changed to close, retry (when not nil) to fire, or
// ctx to end.
func waitChange(ctx context.Context, changed <-chan struct{}, retry *time.Timer) error {
	var tick <-chan time.Time
	if retry != nil {
		defer retry.Stop()
		tick = retry.C
	}
	select {
	case <-changed:
	case <-tick:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// giveBack requeues every message still held that needs an
// acknowledgement, and forgets the no-ack ones.
func (c *Consumer) giveBack() {
	c.life.mu.Lock()
	msgs := make([]*Message, 0, len(c.life.held))
	for m := range c.life.held {
		if m.noAck {
			delete(c.life.held, m)
		} else {
			msgs = append(msgs, m)
		}
	}
	c.life.mu.Unlock()
	for _, m := range msgs {
		if err := m.Requeue(); err != nil && !errors.Is(err, ErrMessageState) {
			c.conn.log.Warn("messaging: drain: cannot requeue an unsettled message; the broker restores it when the channel closes",
				"queue", m.DeliveryInfo.Queue, "delivery_tag", m.DeliveryTag(), "err", err)
		}
	}
	// Requeue forgot them; a message whose settlement failed before it
	// reached the channel is forgotten here.
	c.life.mu.Lock()
	for _, m := range msgs {
		delete(c.life.held, m)
	}
	c.life.mu.Unlock()
}
