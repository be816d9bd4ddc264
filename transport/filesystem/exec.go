package filesystem

import "sync"

// executor runs the blocking file work of one connection, in order, on one
// goroutine it owns (DESIGN: blocking clients run on one executor per
// connection and post to the hub). submit never blocks: the hub hands
// work over with an append under a mutex.
type executor struct {
	mu      sync.Mutex
	jobs    []func()
	stopped bool
	wake    chan struct{} // capacity 1: "jobs is not empty"
	done    chan struct{} // closed when the goroutine has returned
}

func newExecutor() *executor {
	e := &executor{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go e.run()
	return e
}

// submit queues fn; false when the executor is stopped (fn is not run).
func (e *executor) submit(fn func()) bool {
	e.mu.Lock()
	if e.stopped {
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
		stopped := e.stopped
		e.mu.Unlock()
		for i, fn := range batch {
			fn()
			batch[i] = nil
		}
		if len(batch) > 0 {
			continue
		}
		if stopped {
			return
		}
		<-e.wake
	}
}

// stop runs what is queued, then ends the goroutine and waits for it.
// Idempotent.
func (e *executor) stop() {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	<-e.done
}
