package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// ConsumerWorkerOptions configure a [ConsumerWorker] (the methods a Kombu
// ConsumerMixin subclass overrides).
type ConsumerWorkerOptions struct {
	// Consumers returns the consumers to run on a fresh connection
	// (Kombu's get_consumers). The worker creates them with NewConsumer on
	// that connection, with OnDecodeError defaulting to "log and
	// acknowledge" as in Kombu's mixin, unless a consumer names a
	// DeadLetterQueue. Required.
	Consumers func(conn *Connection) ([]ConsumerOptions, error)
	// ConnectRetry is the policy of each (re)connection (Kombu's
	// ensure_connection with connect_max_retries). Default: intervals 2 s,
	// 2 s, 30 s, unlimited retries. When it gives up, Run returns the
	// *OperationalError.
	ConnectRetry RetryPolicy
	// OnConnectionError is called when a connection attempt fails, with
	// the sleep that follows. Default: log a warning.
	OnConnectionError func(err error, interval time.Duration)
	// OnConnectionRevived is called after each (re)connection.
	OnConnectionRevived func(conn *Connection)
	// OnConsumeReady is called once the consumers consume.
	OnConsumeReady func(conn *Connection, consumers []*Consumer)
	// OnConsumeEnd is called when consuming stops on a connection.
	OnConsumeEnd func(conn *Connection)
	// OnIteration is called before each wait for events.
	OnIteration func()
	// SafetyInterval bounds each wait for events, so that Stop and the
	// connection checks are noticed. Default: 1 s.
	SafetyInterval time.Duration
	// RestartInterval is the least time between two starts of consuming
	// (Kombu's restart_limit: one per second). Default: 1 s.
	RestartInterval time.Duration
	// DrainTimeout bounds the graceful end of Run. When ctx ends or Stop
	// is called, Run stops the consumers' deliveries (messages arriving
	// meanwhile go back to the broker) and waits up to DrainTimeout for the
	// callbacks running and the messages they handed on (to a [Workers]
	// pool, say) to be settled, and for the settlements to reach the
	// transport, before it closes the connection (see Consumer.Drain);
	// messages still unsettled then go back to the broker. Default: 10 s.
	// Negative: no wait (unsettled messages go back when the connection
	// closes). ConsumerWorker.Drain bounds the wait with its context
	// instead, and Close does not wait. Consumers whose connection was lost
	// are not drained: their messages are the broker's again.
	DrainTimeout time.Duration
	// Logger receives diagnostics. Default: the connection's logger.
	Logger *slog.Logger
}

// ConsumerWorker runs consumers on a connection until stopped, and
// reconnects when the connection breaks (Kombu's ConsumerMixin, as
// composition). Run blocks on the calling goroutine and starts no
// goroutine of its own.
//
// Run ends gracefully when its context ends or Stop or Drain is called: the
// consumers stop taking messages, the work in flight is finished within
// DrainTimeout (or Drain's context), and the connection is closed. A
// service shuts down on SIGTERM like this:
//
//	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
//	defer stop()
//	err := worker.Run(ctx) // returns once in-flight messages are settled (or DrainTimeout passed)
//	workers.Close()        // the Workers pool the callbacks handed messages to, if any
type ConsumerWorker struct {
	tmpl *Connection
	opts ConsumerWorkerOptions
	log  *slog.Logger
	clk  clock

	mu     sync.Mutex
	stop   bool
	cancel context.CancelFunc
	// drainCtx, set by Drain, bounds the drain instead of DrainTimeout;
	// noDrain, set by Close, skips it.
	drainCtx context.Context
	noDrain  bool
	// running is closed when the Run in progress returns; nil without one.
	running chan struct{}
	// drainErr is the result of the last drain.
	drainErr error
}

// NewConsumerWorker returns a worker that consumes through clones of conn
// (conn itself is not used or closed).
func NewConsumerWorker(conn *Connection, opts ConsumerWorkerOptions) (*ConsumerWorker, error) {
	if conn == nil || opts.Consumers == nil {
		return nil, errors.New("messaging: NewConsumerWorker needs a connection and a Consumers function")
	}
	if opts.SafetyInterval <= 0 {
		opts.SafetyInterval = time.Second
	}
	if opts.RestartInterval <= 0 {
		opts.RestartInterval = time.Second
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	w := &ConsumerWorker{tmpl: conn, opts: opts, log: opts.Logger, clk: conn.clk}
	if w.log == nil {
		w.log = conn.log
	}
	return w, nil
}

// DefaultDrainTimeout is ConsumerWorkerOptions.DrainTimeout's default.
const DefaultDrainTimeout = 10 * time.Second

// Stop makes Run end soon (Kombu's should_stop): it drains the consumers
// within DrainTimeout and returns. Stop does not wait for that. Safe for
// concurrent use, from a hub callback too. A stopped worker stays
// stopped: a later Run returns nil at once.
func (w *ConsumerWorker) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopLocked()
}

func (w *ConsumerWorker) stopLocked() {
	w.stop = true
	if w.cancel != nil {
		w.cancel()
	}
}

// Drain stops the worker gracefully and waits for Run to return: the
// consumers stop taking messages, the callbacks running and the messages
// they handed on are settled (see Consumer.Drain), and the connection is
// closed. ctx bounds the drain instead of DrainTimeout; when it ends first,
// the unsettled messages go back to the broker, and Drain returns
// ctx.Err() without waiting further for Run. Without a Run in progress,
// Drain only stops the worker. Never call it from a hub callback (use
// Stop).
func (w *ConsumerWorker) Drain(ctx context.Context) error {
	w.mu.Lock()
	if w.drainCtx == nil && !w.noDrain {
		w.drainCtx = ctx
	}
	w.stopLocked()
	running := w.running
	w.mu.Unlock()
	if running == nil {
		return nil
	}
	select {
	case <-running:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drainErr
}

// Close stops the worker without draining and waits for Run to return:
// its consumers are closed at once and the connection with them, so
// messages that were delivered and not settled go back to the broker
// (their handlers' later settlements fail). Use Drain or Stop to finish the
// work in flight first. Idempotent; never call it from a hub callback (use
// Stop).
func (w *ConsumerWorker) Close() error {
	w.mu.Lock()
	w.noDrain = true
	w.stopLocked()
	running := w.running
	w.mu.Unlock()
	if running != nil {
		<-running
	}
	return nil
}

func (w *ConsumerWorker) stopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stop
}

// Run consumes until ctx ends or Stop, Drain or Close is called, drains
// the consumers (see DrainTimeout), closes the connection and returns nil;
// or, when the drain did not finish in time, an error matching
// context.DeadlineExceeded (the unsettled messages went back to the
// broker). When the connection breaks it logs "Connection to broker lost,
// trying to re-establish connection...", waits at least RestartInterval
// since the last start, and starts again on a new connection. When the
// broker cancels one of the consumers by itself (RabbitMQ does when the
// queue is deleted: see [ErrCancelledByBroker]) it logs and restarts the
// same way, as Kombu's ConsumerMixin and Celery do on py-amqp's
// ConsumerCancelled: the new consumers declare their queues again, so a
// deleted queue comes back (with NoDeclare, consuming from it fails and
// Run returns that error); RestartInterval keeps a queue deleted over and
// over from making it spin. It returns an error when a connection cannot
// be made within ConnectRetry, or when building or starting the consumers
// fails with anything but a connection error. One Run at a time: a second
// concurrent call returns an error.
func (w *ConsumerWorker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.Lock()
	if w.stop {
		w.mu.Unlock()
		return nil
	}
	if w.running != nil {
		w.mu.Unlock()
		return errors.New("messaging: ConsumerWorker.Run is already running")
	}
	w.cancel = cancel
	running := make(chan struct{})
	w.running = running
	w.drainErr = nil
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.cancel = nil
		w.running = nil
		w.mu.Unlock()
		close(running)
	}()
	var lastStart time.Time
	for {
		if w.stopped() || ctx.Err() != nil {
			return nil
		}
		if !lastStart.IsZero() {
			if wait := w.opts.RestartInterval - w.clk.now().Sub(lastStart); wait > 0 {
				if w.clk.sleep(ctx, wait) != nil {
					return nil
				}
			}
		}
		lastStart = w.clk.now()
		err := w.consume(ctx)
		switch {
		case w.stopped() || ctx.Err() != nil:
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.drainErr != nil {
				return fmt.Errorf("messaging: consumer worker: drain: %w", w.drainErr)
			}
			return nil
		case err == nil:
		case errors.Is(err, ErrOperational):
			return err
		case transport.IsConnectionError(err) || errors.Is(err, errLost) || errors.Is(err, transport.ErrClosed):
			w.log.Warn("messaging: Connection to broker lost, trying to re-establish connection...", "err", err)
		case errors.Is(err, ErrCancelledByBroker):
			w.log.Warn("messaging: the broker cancelled a consumer; restarting the consumers", "err", err)
		default:
			return err
		}
	}
}

// errLost reports a connection that broke while consuming.
var errLost = errors.New("messaging: connection lost while consuming")

// consume runs one connection's worth of consuming (Kombu's consume and
// consumer_context).
func (w *ConsumerWorker) consume(ctx context.Context) (err error) {
	conn := w.tmpl.Clone()
	defer conn.Close()
	policy := w.opts.ConnectRetry
	policy.Errback = func(err error, interval time.Duration) {
		if w.opts.OnConnectionError != nil {
			w.opts.OnConnectionError(err, interval)
		} else {
			w.log.Warn("messaging: broker connection error, trying again", "err", err, "retry_in", interval)
		}
	}
	if err := conn.EnsureConnection(ctx, policy); err != nil {
		return err
	}
	if w.opts.OnConnectionRevived != nil {
		w.opts.OnConnectionRevived(conn)
	}
	optsList, err := w.opts.Consumers(conn)
	if err != nil {
		return err
	}
	consumers := make([]*Consumer, 0, len(optsList))
	defer func() {
		w.finish(ctx, consumers, w.stopped() || ctx.Err() != nil)
		if w.opts.OnConsumeEnd != nil {
			w.opts.OnConsumeEnd(conn)
		}
	}()
	for _, o := range optsList {
		if o.OnDecodeError == nil && o.DeadLetterQueue == "" {
			o.OnDecodeError = w.onDecodeError
		}
		c, err := NewConsumer(conn, o)
		if err != nil {
			return err
		}
		if err := c.Consume(ctx); err != nil {
			return err
		}
		consumers = append(consumers, c)
	}
	if w.opts.OnConsumeReady != nil {
		w.opts.OnConsumeReady(conn, consumers)
	}
	// The consumers live on this generation of the connection; a
	// reconnection (by anything) leaves them behind.
	gen := conn.generation()
	for {
		if conn.generation() != gen {
			return errLost
		}
		if w.stopped() || ctx.Err() != nil {
			return nil
		}
		// DrainEvents reports a cancel by the broker once, perhaps to
		// another caller: the consumers keep it.
		for _, c := range consumers {
			if err := c.Err(); errors.Is(err, ErrCancelledByBroker) {
				return err
			}
		}
		if w.opts.OnIteration != nil {
			w.opts.OnIteration()
		}
		dctx, cancel := context.WithTimeout(ctx, w.opts.SafetyInterval)
		err := conn.DrainEvents(dctx)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, ErrTimeout):
			if !conn.Connected() {
				return errLost
			}
		case errors.Is(err, ErrDecode):
			// Already logged and rejected by the consumer.
		case errors.Is(err, hub.ErrRunning):
			// The caller runs the hub: deliveries flow without us; wait for
			// the end or a broken connection.
			if err := w.await(ctx, conn); err != nil {
				return err
			}
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("messaging: consuming: %w", err)
		}
	}
}

// finish ends the consumers of one connection: drained when the worker
// stops (graceful), closed at once otherwise (the connection was lost, or
// Close was called).
func (w *ConsumerWorker) finish(ctx context.Context, consumers []*Consumer, graceful bool) {
	w.mu.Lock()
	dctx, noDrain := w.drainCtx, w.noDrain
	w.mu.Unlock()
	if !graceful || noDrain || w.opts.DrainTimeout < 0 {
		// Bounded: an AMQP cancel waits for the broker.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.SafetyInterval)
		defer cancel()
		for _, c := range consumers {
			_ = c.halt(cctx, lifeClosed)
			c.life.watchers.Wait()
		}
		return
	}
	if dctx == nil {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), w.opts.DrainTimeout)
		defer cancel()
	}
	// Stop every consumer before waiting for any.
	var errs []error
	for _, c := range consumers {
		errs = append(errs, c.halt(dctx, lifeDraining))
	}
	for _, c := range consumers {
		errs = append(errs, c.finishDrain(dctx))
	}
	err := errors.Join(errs...)
	if err != nil {
		w.log.Warn("messaging: consumers not drained in time; unsettled messages go back to the broker", "err", err)
	}
	w.mu.Lock()
	w.drainErr = err
	w.mu.Unlock()
}

// await waits until ctx ends or conn breaks.
func (w *ConsumerWorker) await(ctx context.Context, conn *Connection) error {
	tc, _, err := conn.current(ctx)
	if err != nil {
		return err
	}
	// Look again after a while: ErrRunning may have come from a driver that
	// has since returned, and then this worker must drive the hub itself.
	t := time.NewTimer(w.opts.SafetyInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-tc.Done():
		return errLost
	case <-t.C:
		return nil
	}
}

// onDecodeError is Kombu's mixin default: log and acknowledge.
func (w *ConsumerWorker) onDecodeError(m *Message, err error) {
	w.log.Error("messaging: cannot decode message, acknowledging it", "queue", m.DeliveryInfo.Queue,
		"content_type", m.ContentType, "content_encoding", m.ContentEncoding, "err", err)
	m.AckLogError(w.log)
}
