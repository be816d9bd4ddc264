package messaging

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
)

// Handler processes one message on a worker goroutine. It may block. If it
// returns without settling the message, the message is acknowledged on nil
// and rejected (or requeued, see WorkersOptions.RequeueOnError) on error.
// ctx ends when the Workers pool closes.
type Handler func(ctx context.Context, body any, m *Message) error

// WorkersOptions configure a [Workers] pool.
type WorkersOptions struct {
	// N is the number of worker goroutines. Default: runtime.GOMAXPROCS(0).
	N int
	// Queue is how many messages may wait for a worker. Default: N. The
	// pool holds at most N+Queue messages that are not settled yet (see
	// Workers.Capacity); a delivery that finds it full is requeued and
	// counted (see Workers.Overflows). A consumer whose PrefetchCount is at
	// most Capacity never overflows the pool: a message leaves the pool's
	// count when it is settled, before the settlement reaches the broker
	// and can let another delivery in.
	Queue int
	// RequeueOnError requeues messages whose handler failed, instead of
	// rejecting them. Default: reject (the broker drops or dead-letters
	// them), so that a poison message does not loop.
	RequeueOnError bool
	// Logger receives handler errors and overflows. Default:
	// slog.Default().
	Logger *slog.Logger
}

// Workers runs message handlers on a bounded pool of goroutines, for
// handlers that block (consumer callbacks run on the hub and must not).
// The callback it makes hands each message to a worker through a bounded
// queue without ever blocking the hub; the worker settles the message with
// Ack, Reject or Requeue, which are safe from any goroutine. Remember that
// those settlements reach the broker when the hub runs (DrainEvents, or
// h.Run on a goroutine of yours).
//
// The pool owns its goroutines: Close stops and joins them. To stop a
// consumer that feeds a pool, drain the consumer first (Consumer.Drain
// waits for the pool to settle the messages it was given), then close the
// pool; a closed pool requeues the deliveries it gets. A consumer that
// stops by itself (its connection lost, or its queue deleted and the
// consumer cancelled by the broker: see Consumer.Done) only stops feeding
// the pool: the messages the pool holds are still handled, and their
// settlements reach the broker while their channel is open (it stays open
// after a cancel by the broker; after a connection loss the broker
// redelivers them instead).
type Workers struct {
	opts   WorkersOptions
	jobs   chan job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger

	// mu orders the hub's sends against Close: the callback sends under
	// the read lock, Close sets closed under the write lock, so no job is
	// queued after Close drained the queue.
	mu        sync.RWMutex
	closed    bool
	overflows atomic.Uint64
	// held counts the messages in the pool (queued or being handled) that
	// are not settled yet; it never passes N+Queue.
	held atomic.Int64
	// inflight counts the messages queued or being handled.
	inflight sync.WaitGroup
}

type job struct {
	h       Handler
	body    any
	m       *Message
	release func() // frees the message's place in held; idempotent
}

// NewWorkers starts a pool of worker goroutines.
func NewWorkers(opts WorkersOptions) *Workers {
	if opts.N <= 0 {
		opts.N = runtime.GOMAXPROCS(0)
	}
	if opts.Queue <= 0 {
		opts.Queue = opts.N
	}
	// Room for every message the pool may hold, so that a send the count
	// admitted never finds the buffer full.
	w := &Workers{opts: opts, jobs: make(chan job, opts.N+opts.Queue), log: opts.Logger}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(opts.N)
	for range opts.N {
		go w.run()
	}
	return w
}

func (w *Workers) run() {
	defer w.wg.Done()
	for {
		select {
		case j := <-w.jobs:
			w.process(j)
			j.release()
			w.inflight.Done()
		case <-w.ctx.Done():
			return
		}
	}
}

func (w *Workers) process(j job) {
	if j.m.Acknowledged() {
		// Settled before its turn: its consumer's Drain reached its
		// deadline and gave it back to the broker.
		return
	}
	err := j.h(w.ctx, j.body, j.m)
	if j.m.Acknowledged() {
		if err != nil {
			w.log.Error("messaging: handler failed", "delivery_tag", j.m.DeliveryTag(), "err", err)
		}
		return
	}
	switch {
	case err == nil:
		j.m.AckLogError(w.log)
	case w.opts.RequeueOnError:
		w.log.Error("messaging: handler failed, requeueing", "delivery_tag", j.m.DeliveryTag(), "err", err)
		w.requeue(j.m)
	default:
		w.log.Error("messaging: handler failed, rejecting", "delivery_tag", j.m.DeliveryTag(), "err", err)
		j.m.RejectLogError(w.log)
	}
}

func (w *Workers) requeue(m *Message) {
	if m.noAck {
		return
	}
	if err := m.Requeue(); err != nil {
		w.log.Error("messaging: cannot requeue message", "delivery_tag", m.DeliveryTag(), "err", err)
	}
}

// Callback returns a consumer callback that runs h on the pool. The
// callback never blocks: when the pool holds Capacity unsettled messages
// (or is closed) the message is requeued and the overflow counted; a no-ack
// message cannot be requeued and is dropped with a logged ErrSlowConsumer.
func (w *Workers) Callback(h Handler) Callback {
	return func(body any, m *Message) {
		w.mu.RLock()
		sent := false
		if !w.closed && w.held.Add(1) <= int64(w.Capacity()) {
			var once atomic.Bool
			release := func() {
				if once.CompareAndSwap(false, true) {
					w.held.Add(-1)
				}
			}
			m.setOnSettle(release)
			w.inflight.Add(1)
			select {
			case w.jobs <- job{h: h, body: body, m: m, release: release}:
				sent = true
			default: // not reached: the buffer has room for Capacity
				w.inflight.Done()
				m.setOnSettle(nil)
				release()
			}
		} else if !w.closed {
			w.held.Add(-1)
		}
		w.mu.RUnlock()
		if !sent {
			w.overflows.Add(1)
			w.log.Warn("messaging: worker queue full or closed, requeueing", "delivery_tag", m.DeliveryTag(),
				"err", ErrSlowConsumer, "no_ack", m.noAck)
			w.requeue(m)
		}
	}
}

// Overflows returns how many deliveries found the pool full or closed.
func (w *Workers) Overflows() uint64 { return w.overflows.Load() }

// Capacity returns N+Queue: how many unsettled messages the pool takes.
// Give the consumers feeding it a PrefetchCount of at most that
// (ConsumerOptions.PrefetchCount), and no delivery overflows it.
func (w *Workers) Capacity() int { return w.opts.N + w.opts.Queue }

// Close stops the pool: it cancels the handlers' context, waits for the
// running handlers to return, and requeues the messages still queued.
// Idempotent.
func (w *Workers) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.closeNow()
}

// closeNow cancels the handlers, joins the workers and requeues what is
// left in the queue. Safe to call more than once.
func (w *Workers) closeNow() error {
	w.cancel()
	w.wg.Wait()
	for {
		select {
		case j := <-w.jobs:
			w.requeue(j.m)
			j.release()
			w.inflight.Done()
		default:
			return nil
		}
	}
}

// Drain stops accepting messages (new deliveries are requeued), lets the
// workers handle those already queued, and closes the pool. If ctx ends
// first, it closes at once: running handlers see their context cancelled
// and the queued messages are requeued.
func (w *Workers) Drain(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.Close()
	}
	w.closed = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { // joined below: Close ends every in-flight job
		w.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	w.closeNow()
	<-done
	return ctx.Err()
}
