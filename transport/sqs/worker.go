package sqs

import (
	"context"
	"sync"
)

// worker is one goroutine that runs blocking SDK calls in the order they
// were queued. A connection has two: the executor (acknowledgements,
// requeues, deletes of no-ack deliveries) and the receiver (ReceiveMessage
// long polls), so that a long poll never holds up an acknowledgement.
//
// Jobs are queued from the hub goroutine (and from WaitClose); queueing
// never blocks. A job gets the worker's context, cancelled by stop.
type worker struct {
	mu     sync.Mutex
	jobs   []func(ctx context.Context)
	signal chan struct{} // capacity 1: "jobs is not empty"
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

func newWorker() *worker {
	w := &worker{signal: make(chan struct{}, 1), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// start runs the worker's goroutine; stop joins it.
func (w *worker) start() {
	go w.run() // owned by the connection; joined in stop
}

// do queues fn. It reports false when the worker has stopped: fn will not
// run.
func (w *worker) do(fn func(ctx context.Context)) bool {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return false
	}
	w.jobs = append(w.jobs, fn)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
	return true
}

// barrier waits until every job queued before it has run, or ctx ends.
func (w *worker) barrier(ctx context.Context) error {
	ch := make(chan struct{})
	if !w.do(func(context.Context) { close(ch) }) {
		return nil // stopped: every queued job has run
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *worker) run() {
	defer close(w.done)
	var batch []func(ctx context.Context)
	for {
		w.mu.Lock()
		batch, w.jobs = w.jobs, batch[:0]
		closed := w.closed
		w.mu.Unlock()
		for i, fn := range batch {
			fn(w.ctx)
			batch[i] = nil
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		<-w.signal
	}
}

// stop lets the queued jobs run (finish, when graceful; with a cancelled
// context, when not) and joins the goroutine.
func (w *worker) stop(graceful bool) {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	if !graceful {
		w.cancel()
	}
	select {
	case w.signal <- struct{}{}:
	default:
	}
	<-w.done
	w.cancel()
}
