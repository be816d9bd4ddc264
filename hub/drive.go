package hub

import (
	"context"
	"time"
)

// Who holds the hub. The token (a channel of capacity 1) is held by the one
// goroutine that owns the hub at any moment; holder says by what, so that
// a driver knows whether to wait for it (a short holder) or give up
// (ErrRunning).
const (
	holdNone  int32 = iota
	holdRun         // Run: a long-lived driver
	holdDrive       // Drive, RunOnce: a driver with its own end condition
	holdCall        // Call, Close: short
	holdOwn         // TryOwn: short, and runs no loop work
)

func (h *Hub) acquire() bool {
	select {
	case h.token <- struct{}{}:
		return true
	default:
		return false
	}
}

func (h *Hub) release() {
	h.holder.Store(holdNone)
	<-h.token
}

// acquireAs takes the token for a driver of the given kind. A short holder
// (Call, Close, TryOwn) is waited for; a Run or Drive holder gives
// ErrRunning. Loop work that would wait (it would wait for itself) gets
// ErrInCallback.
func (h *Hub) acquireAs(ctx context.Context, kind int32) error {
	for checked := false; ; {
		if h.acquire() {
			h.holder.Store(kind)
			return nil
		}
		if !checked {
			checked = true
			if onLoop() {
				return ErrInCallback
			}
		}
		switch h.holder.Load() {
		case holdRun, holdDrive:
			return ErrRunning
		}
		// A short holder, or one that just took or released the token and
		// has not said what it is yet: wait, and look again shortly.
		t := time.NewTimer(time.Millisecond)
		select {
		case h.token <- struct{}{}:
			t.Stop()
			h.holder.Store(kind)
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-h.done:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}

// TryOwn runs fn on the calling goroutine as the hub's owner, if no
// goroutine is driving the hub, and reports whether it did. While fn runs,
// the caller holds the hub as a driver would (Run, Drive, RunOnce, Call and
// Close wait for it, and fn may call the hub-only methods), but nothing of
// the loop runs: no callbacks, no posts, no timers, no poll. fn must be
// short and must not block, and must not call TryOwn.
//
// TryOwn is for synchronous code that must change hub-owned state promptly
// while nobody drives the hub, without becoming the driver: the channel
// applies a synchronous Get and Ack loop's settlements with it, so they
// reach the broker at once while deliveries wait for whoever drives the
// hub next. When a driver holds the hub (including from a hub callback),
// TryOwn returns false at once without running fn: Post the work instead,
// and the driver runs it in its next turn. When another TryOwn holds the
// hub, TryOwn waits for it. It returns false on a closed hub. A panic in fn
// reaches the caller, after the hub is released. Safe for concurrent use.
func (h *Hub) TryOwn(fn func()) bool {
	if h.closed.Load() || h.closing.Load() {
		return false
	}
	switch h.holder.Load() {
	case holdRun, holdDrive, holdCall:
		// A driver holds the hub (the usual case for acks from worker
		// goroutines): decline without queueing on ownMu behind the other
		// goroutines that will decline too.
		return false
	}
	h.ownMu.Lock()
	defer h.ownMu.Unlock()
	if !h.acquire() {
		return false
	}
	h.holder.Store(holdOwn)
	defer h.release()
	if h.closed.Load() {
		return false // Close finished between the check and the token
	}
	fn()
	return true
}

// RunOnce runs one turn, polling for at most maxWait (a negative maxWait
// waits as long as nothing happens). It returns ErrRunning when another
// goroutine drives the hub with Run or Drive; a Call in progress is waited
// for. From loop work, where it would wait for itself, it returns
// ErrInCallback.
func (h *Hub) RunOnce(maxWait time.Duration) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.acquireAs(context.Background(), holdDrive); err != nil {
		return err
	}
	defer h.release()
	return h.turn(maxWait)
}

// Run drives the hub on the calling goroutine until ctx ends (returning
// ctx.Err()), Stop is called (returning nil), or a callback fails (see
// Options.OnError). It returns ErrRunning when another goroutine drives the
// hub with Run or Drive; a Call in progress (which ends by itself) is
// waited for. From loop work it returns ErrInCallback.
func (h *Hub) Run(ctx context.Context) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.acquireAs(ctx, holdRun); err != nil {
		return err
	}
	defer h.release()
	h.stopReq.Store(false)
	stop := context.AfterFunc(ctx, h.Wake)
	defer stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if h.stopReq.Load() {
			h.stopReq.Store(false)
			return nil
		}
		if h.closed.Load() || h.closing.Load() {
			return ErrClosed
		}
		if err := h.turn(-1); err != nil {
			return err
		}
	}
}

// Call runs fn on the hub goroutine and waits for it. If no goroutine is
// driving the hub, the caller drives it until fn has run (it is then the
// hub goroutine, and other loop work runs on it too). Safe for concurrent
// use, but not from loop work (see [InCallback]; the hub would wait for
// itself, or a callback would block on another hub): there it returns
// ErrInCallback at once without running fn. If ctx ends first, Call returns
// ctx.Err() and fn may still run later.
func (h *Hub) Call(ctx context.Context, fn func()) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if onLoop() {
		return ErrInCallback
	}
	done := make(chan struct{})
	h.Post(func() { fn(); close(done) })
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-h.done:
			return ErrClosed
		case h.token <- struct{}{}:
			h.holder.Store(holdCall)
			err := h.drive(ctx, func() bool {
				select {
				case <-done:
					return true
				default:
					return false
				}
			})
			h.release()
			if err != nil {
				return err
			}
		}
	}
}

// Drive runs turns on the calling goroutine until cond returns true (checked
// after every turn and before each poll), ctx ends, Close is called
// (ErrClosed), or a turn fails. It returns ErrRunning when another goroutine
// drives the hub with Run or Drive; a Call in progress is waited for; from
// loop work, where it would wait for itself, it returns ErrInCallback. It
// is how synchronous APIs such as DrainEvents wait for their event.
func (h *Hub) Drive(ctx context.Context, cond func() bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.acquireAs(ctx, holdDrive); err != nil {
		return err
	}
	defer h.release()
	return h.drive(ctx, cond)
}

// drive runs turns until cond holds, ctx ends, or a turn fails. The caller
// holds the token.
func (h *Hub) drive(ctx context.Context, cond func() bool) error {
	stop := context.AfterFunc(ctx, h.Wake)
	defer stop()
	h.until = cond
	defer func() { h.until = nil }()
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if h.closed.Load() || h.closing.Load() {
			return ErrClosed
		}
		wait := time.Duration(-1)
		if dl, ok := ctx.Deadline(); ok {
			wait = max(time.Until(dl), 0)
		}
		if err := h.turn(wait); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the loop, runs the callbacks still waiting (so pending
// acknowledgements are not lost), calls the OnClose hooks, and closes the
// poller. If another goroutine is running the hub, Close waits for that
// Run to return first. Idempotent and safe for concurrent use, but not
// from loop work (see [InCallback]): there it returns ErrInCallback at once
// and closes nothing (call Stop there, and Close once Run has returned).
// On a hub already closed it returns the first Close's result.
func (h *Hub) Close() error {
	select {
	case <-h.done:
		return h.err
	default:
	}
	if onLoop() {
		return ErrInCallback
	}
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	select {
	case <-h.done:
		return h.err
	default:
	}
	h.stopReq.Store(true)
	h.closing.Store(true)
	h.Wake()
	h.token <- struct{}{} // wait for a running loop (Run, Drive, Call, TryOwn) to return
	h.holder.Store(holdCall)
	defer h.release()
	// Pending work first, so that it may still use the poller and timers.
	for i := 0; i < 2 && (len(h.ready) > 0 || h.nposts.Load() != h.taken); i++ {
		h.runReady()
	}
	for _, fn := range h.onClose {
		h.safe(fn)
	}
	h.onClose = nil
	h.closed.Store(true)
	// Drain posts that raced with the close flag, then the poller.
	h.runReady()
	if h.waitF != nil {
		h.waitF.Close()
	}
	h.err = h.p.Close()
	for i := range h.fds {
		h.fds[i] = entry{}
	}
	h.nfds = 0
	h.timers.Clear()
	close(h.done)
	return h.err
}

// Done is closed when Close has finished.
func (h *Hub) Done() <-chan struct{} { return h.done }
