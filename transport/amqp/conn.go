package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Blocker is implemented by the connections of this transport. fn runs on
// the hub goroutine whenever the broker blocks the connection
// (connection.blocked, e.g. a memory or disk alarm: publishing stalls) or
// unblocks it. A later call replaces fn.
type Blocker interface {
	OnBlocked(fn func(blocked bool, reason string))
}

type opKind uint8

const (
	opCall   opKind = iota // a synchronous call waiting for its result
	opSettle               // an ack or reject, batched
	opEvent                // an internal event (forwarder ended, connection lost)
)

type settleKind uint8

const (
	settleAck settleKind = iota
	settleReject
	settleRequeue
)

// op is one request to the executor.
type op struct {
	kind   opKind
	settle settleKind
	tag    uint64
	ch     *channel
	call   *call
	ev     func()
}

// call states.
const (
	callPending int32 = iota
	callRunning
	callAbandoned
)

type call struct {
	fn    func() error
	done  chan error // capacity 1: the executor never blocks on it
	state atomic.Int32
}

// conn is a transport.Conn. Its amqp091 connection, channels and topology
// record belong to the executor goroutine; other goroutines reach them only
// through the op queue.
type conn struct {
	t   *Transport
	s   *settings
	h   *hub.Hub
	log *slog.Logger
	id  string

	// mu guards the op queue: every goroutine that calls the connection
	// appends and the executor takes. The hub cannot own the queue because
	// the executor must never wait for the hub.
	mu    sync.Mutex
	ops   []op
	spare []op
	wake  chan struct{}

	closeCtx   context.Context // ends when Close starts
	closeNow   context.CancelFunc
	closeOnce  sync.Once
	execDone   chan struct{} // closed when the executor returned
	done       chan struct{} // Done(): closed after Close or a permanent failure
	err        error         // written before done is closed
	goroutines sync.WaitGroup

	// sockMu guards sock: Close may cut the socket from its goroutine while
	// the executor replaces it during recovery.
	sockMu sync.Mutex
	sock   net.Conn

	onBlocked atomic.Pointer[func(bool, string)]
	notif     *notifier
	tagSeq    atomic.Uint64

	// Executor-owned state.
	ac     *amqp091.Connection
	gen    uint64 // connection generation, bumped by every (re)connect
	ctl    *amqp091.Channel
	chans  []*channel
	topo   topology
	failed error
	cause  *amqp091.Error // why the current connection closed, if known
	// inner counts the reopens and recoveries in progress: within them a
	// lost connection is reported, never recovered recursively.
	inner int
	// recoveredAt is when the last recovery began: the next one waits
	// until recoveryGap has passed since (see recover).
	recoveredAt time.Time
}

// recoveryGap is the least time between the starts of two recoveries, as
// Kombu's ConsumerMixin restarts at most once a second (restart_limit): a
// connection that breaks as soon as it is made (say, a message that makes
// the client fail at every redelivery) reconnects once a second, not in a
// tight loop, and a connection that worked for a second or more is
// recovered at once, however often it broke before.
const recoveryGap = time.Second

func newConn(t *Transport, h *hub.Hub, ac *amqp091.Connection, nc net.Conn) *conn {
	c := &conn{
		t:        t,
		s:        &t.s,
		h:        h,
		log:      t.s.logger,
		id:       randomID(),
		wake:     make(chan struct{}, 1),
		execDone: make(chan struct{}),
		done:     make(chan struct{}),
		ac:       ac,
		sock:     nc,
		gen:      1,
	}
	c.closeCtx, c.closeNow = context.WithCancel(context.Background())
	c.notif = newNotifier(c)
	c.goroutines.Add(2)
	go func() { defer c.goroutines.Done(); c.notif.run() }()
	c.notif.watchConn(ac, c.gen)
	go func() { defer c.goroutines.Done(); c.run() }()
	return c
}

// Channel opens a channel: one AMQP channel, reopened transparently after
// a channel error or a reconnection.
func (c *conn) Channel(ctx context.Context) (transport.Channel, error) {
	ch := &channel{c: c}
	err := c.do(ctx, func() error {
		if err := c.ensureConn(); err != nil {
			return err
		}
		if err := ch.reopen(); err != nil {
			return err
		}
		c.chans = append(c.chans, ch)
		return nil
	})
	if err != nil {
		ch.closed.Store(true)
		if ctx.Err() != nil {
			// The open may have run anyway: close it after it.
			c.enqueue(op{kind: opEvent, ev: func() { c.dropChannel(ch) }})
		}
		return nil, err
	}
	return ch, nil
}

// dropChannel forgets a closed channel and closes its AMQP channel
// (executor).
func (c *conn) dropChannel(ch *channel) {
	for i, x := range c.chans {
		if x == ch {
			c.chans = append(c.chans[:i], c.chans[i+1:]...)
			break
		}
	}
	for _, cons := range ch.consumers {
		cons.cancelled.Store(true)
	}
	ch.closeAMQP()
	for _, cons := range ch.consumers {
		c.topo.consumerGone(cons.queue, c.chans)
	}
	ch.consumers = nil
}

// Done is closed once the connection is closed, or lost for good after the
// recovery gave up.
func (c *conn) Done() <-chan struct{} { return c.done }

// Err is nil while the connection is open or recovering, then ErrClosed
// after Close or the error that made the recovery give up.
func (c *conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// OnBlocked registers fn for connection.blocked and connection.unblocked.
func (c *conn) OnBlocked(fn func(blocked bool, reason string)) {
	if fn == nil {
		c.onBlocked.Store(nil)
		return
	}
	c.onBlocked.Store(&fn)
}

// Close flushes queued acknowledgements, closes every channel (the broker
// requeues their unacknowledged messages) and the connection, and joins
// every goroutine the connection started. If the broker does not answer
// within close_timeout, the socket is cut. Idempotent; it does not need the
// hub, so it may also be called from a hub callback.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeNow()
		c.kick()
	})
	t := time.NewTimer(c.s.CloseTimeout)
	select {
	case <-c.execDone:
		t.Stop()
	case <-t.C:
		c.log.Warn("amqp: broker did not answer the close in time; cutting the socket")
		c.cutSocket()
		<-c.execDone
	}
	c.goroutines.Wait()
	return nil
}

func (c *conn) cutSocket() {
	c.sockMu.Lock()
	if c.sock != nil {
		c.sock.Close()
	}
	c.sockMu.Unlock()
}

func (c *conn) closing() bool { return c.closeCtx.Err() != nil }

// usable returns the error a new request gets, or nil.
func (c *conn) usable() error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	if c.closing() {
		return fmt.Errorf("amqp: connection: %w", transport.ErrClosed)
	}
	return nil
}

func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) enqueue(o op) {
	c.mu.Lock()
	c.ops = append(c.ops, o)
	c.mu.Unlock()
	c.kick()
}

func (c *conn) take() []op {
	c.mu.Lock()
	ops := c.ops
	c.ops = c.spare[:0]
	c.spare = nil
	c.mu.Unlock()
	return ops
}

// do runs fn on the executor and waits for it. If ctx ends first, do
// returns ctx.Err(); fn is skipped if it had not started.
func (c *conn) do(ctx context.Context, fn func() error) error {
	if err := c.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cl := &call{fn: fn, done: make(chan error, 1)}
	c.enqueue(op{kind: opCall, call: cl})
	select {
	case err := <-cl.done:
		return err
	case <-ctx.Done():
		cl.state.CompareAndSwap(callPending, callAbandoned)
		return ctx.Err()
	case <-c.done:
		select {
		case err := <-cl.done:
			return err
		default:
			return c.err
		}
	}
}

// run is the executor: every amqp091 call of this connection happens here,
// one at a time, so a blocked socket stalls this goroutine and never the hub.
func (c *conn) run() {
	defer close(c.execDone)
	for {
		select {
		case <-c.wake:
		case <-c.closeCtx.Done():
		}
		yielded := false
		for {
			ops := c.take()
			if len(ops) == 0 {
				if yielded {
					break
				}
				// A caller that just got its answer often asks again at
				// once (publishing in a loop): yield once before sleeping,
				// which spares both goroutines a wake-up.
				yielded = true
				runtime.Gosched()
				continue
			}
			yielded = false
			c.process(ops)
			clear(ops)
			c.mu.Lock()
			c.spare = ops[:0]
			c.mu.Unlock()
		}
		if c.failed != nil {
			c.finish(c.failed)
			return
		}
		if c.closing() {
			c.shutdown()
			return
		}
	}
}

func (c *conn) process(ops []op) {
	start := -1 // first settle of the current run of settles
	for i := range ops {
		o := &ops[i]
		if o.kind == opSettle {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			c.settle(ops[start:i])
			start = -1
		}
		switch o.kind {
		case opCall:
			if !o.call.state.CompareAndSwap(callPending, callRunning) {
				continue
			}
			var err error
			if c.failed != nil {
				err = c.failed
			} else {
				done := c.expect()
				err = o.call.fn()
				done()
			}
			o.call.done <- err
		case opEvent:
			if c.failed == nil {
				o.ev()
			}
		}
	}
	if start >= 0 {
		c.settle(ops[start:])
	}
}

// settle sends a run of acks and rejects, channel by channel.
func (c *conn) settle(ops []op) {
	if c.failed != nil {
		return
	}
	for len(ops) > 0 {
		ch := ops[0].ch
		var mine, rest []op
		for _, o := range ops {
			if o.ch == ch {
				mine = append(mine, o)
			} else {
				rest = append(rest, o)
			}
		}
		ch.settle(mine)
		ops = rest
	}
}

// expect bounds, with read_timeout, the broker's silence until the
// returned function is called (see timeoutConn).
func (c *conn) expect() func() {
	if c.s.ReadTimeout <= 0 {
		return func() {}
	}
	c.sockMu.Lock()
	tc, _ := c.sock.(*timeoutConn)
	c.sockMu.Unlock()
	if tc == nil {
		return func() {}
	}
	return tc.expect()
}

// ensureConn makes sure the AMQP connection is up, recovering it if it was
// lost. It returns the permanent error once recovery gave up.
func (c *conn) ensureConn() error {
	if c.failed != nil {
		return c.failed
	}
	if c.closing() {
		return fmt.Errorf("amqp: connection: %w", transport.ErrClosed)
	}
	if c.ac != nil && !c.ac.IsClosed() {
		return nil
	}
	if c.inner > 0 {
		return &transport.BrokerError{Kind: transport.KindConnection, Err: transport.ErrConnectionLost}
	}
	return c.recover()
}

// control returns the connection's declaration channel, opening it if
// needed. Declarations run there so that a refused one (a passive declare
// of a missing queue) never closes a channel that consumes or publishes.
func (c *conn) control() (*amqp091.Channel, error) {
	if err := c.ensureConn(); err != nil {
		return nil, err
	}
	if c.ctl != nil && !c.ctl.IsClosed() {
		return c.ctl, nil
	}
	ctl, err := c.ac.Channel()
	if err != nil {
		return nil, c.channelError(err)
	}
	c.ctl = ctl
	return ctl, nil
}

// channelError maps an error of opening an AMQP channel.
func (c *conn) channelError(err error) error {
	if errors.Is(err, amqp091.ErrChannelMax) {
		return fmt.Errorf("%w: all %d channels the connection negotiated are open "+
			"(channel_max; one is the transport's declaration channel)", ErrChannelMax, c.ac.Config.ChannelMax)
	}
	return brokerError(err, c.ac.IsClosed())
}

// ctlErr maps an error of the control channel.
func (c *conn) ctlErr(err error) error {
	return brokerError(err, c.ac == nil || c.ac.IsClosed())
}

// lost handles the close notification of connection generation gen.
func (c *conn) lost(gen uint64, cause *amqp091.Error) {
	if gen != c.gen || c.closing() || c.failed != nil {
		return
	}
	if c.ac != nil && !c.ac.IsClosed() {
		return // a late or spurious notice: the connection is fine
	}
	c.cause = cause
	if err := c.ensureConn(); err != nil && c.failed == nil {
		c.log.Debug("amqp: recovery interrupted", "err", err)
	}
}

// newTag returns a consumer tag unique to this process and connection.
func (c *conn) newTag() string {
	return "kombu-go." + c.id + "." + strconv.FormatUint(c.tagSeq.Add(1), 10)
}

// recover replaces a lost connection, as Kombu's ensure_connection would,
// then restores the recorded topology and every channel with its prefetch
// and consumers. It runs on the executor, so nothing else touches the
// connection meanwhile; queued requests wait for it.
func (c *conn) recover() error {
	c.inner++
	defer func() { c.inner-- }()
	cause := c.cause
	c.cause = nil
	c.log.Warn("amqp: connection lost", "cause", errString(cause))
	if c.ac != nil {
		_ = c.ac.Close()
	}
	for _, ch := range c.chans {
		ch.retire()
	}
	c.ctl = nil
	lostErr := error(&transport.BrokerError{Kind: transport.KindConnection,
		Err: transport.ErrConnectionLost})
	if cause != nil {
		lostErr = brokerError(cause, true)
	}
	if !c.s.Recovery {
		return c.fail(lostErr)
	}
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-c.closeCtx.Done():
			return false
		}
	}
	if wait := recoveryGap - time.Since(c.recoveredAt); !c.recoveredAt.IsZero() && wait > 0 {
		c.log.Warn("amqp: connection lost again within a second of its recovery; waiting", "wait", wait)
		if !sleep(wait) {
			return fmt.Errorf("amqp: connection: %w", transport.ErrClosed)
		}
	}
	c.recoveredAt = time.Now()
	// Every recovery starts the policy afresh: the first attempt at once,
	// then interval_start, +interval_step ... for max_retries retries.
	next := intervals(c.s.IntervalStart, c.s.IntervalStep, c.s.IntervalMax)
	last := lostErr
	var giveUp time.Time // connect_retries_timeout
	if c.s.ConnectRetriesTimeout > 0 {
		giveUp = time.Now().Add(c.s.ConnectRetriesTimeout)
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if c.s.MaxRetries >= 0 && attempt > c.s.MaxRetries {
				return c.fail(fmt.Errorf("%w after %d attempts: %w", ErrRecoveryFailed, attempt, last))
			}
			wait := next()
			if !giveUp.IsZero() && time.Now().Add(wait).After(giveUp) {
				return c.fail(fmt.Errorf("%w after %d attempts (connect_retries_timeout %v): %w",
					ErrRecoveryFailed, attempt, c.s.ConnectRetriesTimeout, last))
			}
			if !sleep(wait) {
				return fmt.Errorf("amqp: connection: %w", transport.ErrClosed)
			}
		}
		ac, nc, err := dialBroker(c.closeCtx, c.s)
		if err != nil {
			if c.closing() {
				return fmt.Errorf("amqp: connection: %w", transport.ErrClosed)
			}
			last = err
			c.log.Warn("amqp: reconnect failed", "attempt", attempt+1, "err", err)
			var be *transport.BrokerError
			if errors.As(err, &be) && be.Code == 403 {
				return c.fail(fmt.Errorf("%w: %w", ErrRecoveryFailed, err))
			}
			continue
		}
		c.sockMu.Lock()
		c.sock = nc
		c.sockMu.Unlock()
		c.ac = ac
		c.gen++
		c.notif.watchConn(ac, c.gen)
		if err := c.restore(); err != nil {
			last = err
			c.log.Warn("amqp: restoring the topology failed", "attempt", attempt+1, "err", err)
			_ = ac.Close()
			for _, ch := range c.chans {
				ch.retire()
			}
			c.ctl = nil
			continue
		}
		c.log.Info("amqp: connection recovered", "attempts", attempt+1)
		return nil
	}
}

// restore redeclares the recorded topology and reopens the channels. A
// connection error aborts it (the caller retries); an entity the broker now
// refuses is logged and skipped.
func (c *conn) restore() error {
	entityErr := func(what string, err error) error {
		if c.ac.IsClosed() {
			return c.ctlErr(err)
		}
		c.log.Error("amqp: could not restore "+what, "err", err)
		return nil
	}
	for _, ex := range c.topo.exchanges {
		ctl, err := c.control()
		if err != nil {
			return err
		}
		if err := declareExchange(ctl, ex); err != nil {
			if err := entityErr("exchange "+ex.Name, err); err != nil {
				return err
			}
		}
	}
	rebind := func(list []transport.Binding, what string, bind func(*amqp091.Channel, transport.Binding) error) error {
		for _, b := range list {
			ctl, err := c.control()
			if err != nil {
				return err
			}
			if err := bind(ctl, b); err != nil {
				if err := entityErr(what+" "+b.Queue+"<-"+b.Exchange, err); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := rebind(c.topo.exBindings, "exchange binding", bindExchange); err != nil {
		return err
	}
	for i := range c.topo.queues {
		name := c.topo.queues[i].name
		if err := c.declareRecorded(i); err != nil {
			if err := entityErr("queue "+name, err); err != nil {
				return err
			}
		}
	}
	if err := rebind(c.topo.bindings, "binding", bindQueue); err != nil {
		return err
	}
	live := c.chans[:0]
	for _, ch := range c.chans {
		if ch.closed.Load() {
			continue
		}
		live = append(live, ch)
		if err := ch.reopen(); err != nil {
			if c.ac.IsClosed() {
				return err
			}
			c.log.Error("amqp: could not reopen a channel", "err", err)
		}
	}
	clear(c.chans[len(live):])
	c.chans = live
	return nil
}

// declareRecorded declares the i-th recorded queue again. A server-named
// queue gets a new name, which the bindings and consumers follow.
func (c *conn) declareRecorded(i int) error {
	rq := &c.topo.queues[i]
	ctl, err := c.control()
	if err != nil {
		return err
	}
	q := rq.q
	if rq.serverNamed {
		q.Name = ""
	} else {
		q.Name = rq.name
	}
	qi, err := declareQueue(ctl, q)
	if err != nil {
		return err
	}
	if qi.Name != rq.name {
		old := rq.name
		c.topo.rename(old, qi.Name)
		for _, ch := range c.chans {
			for _, cons := range ch.consumers {
				if cons.queue == old {
					cons.queue = qi.Name
				}
			}
		}
		rq.name = qi.Name
	}
	return nil
}

// redeclareQueue declares a recorded queue and its bindings again: an
// auto-delete queue disappears with the channel of its last consumer, so a
// channel reopen must bring it back before consuming. It reports whether
// the queue was recorded and declared.
func (c *conn) redeclareQueue(name string) bool {
	for i := range c.topo.queues {
		if c.topo.queues[i].name != name {
			continue
		}
		if err := c.declareRecorded(i); err != nil {
			c.log.Warn("amqp: could not declare the queue again", "queue", name, "err", err)
			return false
		}
		cur := c.topo.queues[i].name
		for _, b := range c.topo.bindings {
			if b.Queue != cur {
				continue
			}
			ctl, err := c.control()
			if err != nil {
				return false
			}
			if err := bindQueue(ctl, b); err != nil {
				c.log.Warn("amqp: could not bind the queue again", "queue", cur, "exchange", b.Exchange, "err", err)
			}
		}
		return true
	}
	return false
}

// fail makes err permanent: every pending and later request gets it.
func (c *conn) fail(err error) error {
	if c.failed == nil {
		c.failed = err
		c.log.Error("amqp: connection failed for good", "err", err)
	}
	return c.failed
}

// finish tears everything down after a permanent failure.
func (c *conn) finish(err error) {
	if c.ac != nil {
		_ = c.ac.Close()
	}
	c.cutSocket()
	for _, ch := range c.chans {
		ch.closed.Store(true)
		ch.retire()
	}
	c.chans = nil
	c.end(err)
}

// shutdown is the graceful close, on the executor.
func (c *conn) shutdown() {
	for _, ch := range c.chans {
		ch.closed.Store(true)
		ch.closeAMQP()
	}
	c.chans = nil
	if c.ctl != nil {
		_ = c.ctl.Close()
		c.ctl = nil
	}
	if c.ac != nil {
		_ = c.ac.Close()
	}
	c.cutSocket()
	c.end(fmt.Errorf("amqp: connection: %w", transport.ErrClosed))
}

// end publishes the final error, fails the requests still queued and stops
// the notifier.
func (c *conn) end(err error) {
	c.err = err
	close(c.done)
	c.notif.stop()
	for _, o := range c.take() {
		if o.kind == opCall && o.call.state.CompareAndSwap(callPending, callRunning) {
			o.call.done <- err
		}
	}
}

// intervals returns Kombu's retry intervals (fxrange with repeatlast):
// start, start+step, ... while not above max+start, then the last forever.
func intervals(start, step, maxI time.Duration) func() time.Duration {
	cur := start
	stop := maxI + start
	return func() time.Duration {
		if cur <= stop || step <= 0 {
			d := cur
			if step > 0 {
				cur += step
			}
			return d
		}
		return cur - step
	}
}

func errString(e *amqp091.Error) string {
	if e == nil {
		return "unknown"
	}
	return e.Error()
}
