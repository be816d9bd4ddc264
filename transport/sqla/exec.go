package sqla

import "sync"

// executor is the one goroutine of a connection that runs the consumer
// side's database calls (claims, acknowledgements, restores), which block,
// so that the hub never waits for the database. Jobs run in the order they
// were submitted; a job reports back to the hub with hub.Post.
type executor struct {
	mu     sync.Mutex
	jobs   []func()
	wake   chan struct{} // capacity 1
	closed bool
	done   chan struct{}
}

func newExecutor() *executor {
	e := &executor{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go e.run() // owned by the connection; joined by stop
	return e
}

// submit queues fn; false once the executor is stopping (fn is not run).
// Safe from any goroutine.
func (e *executor) submit(fn func()) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.jobs = append(e.jobs, fn)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return true
}

func (e *executor) run() {
	defer close(e.done)
	var batch []func()
	for {
		e.mu.Lock()
		batch, e.jobs = e.jobs, batch[:0]
		closed := e.closed
		e.mu.Unlock()
		for i, fn := range batch {
			fn()
			batch[i] = nil
		}
		if len(batch) == 0 {
			if closed {
				return
			}
			<-e.wake
		}
	}
}

// stop refuses new jobs, lets the queued ones finish and joins the
// goroutine.
func (e *executor) stop() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	<-e.done
}
