package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/poller"
	"github.com/kombu-go/kombu/timer"
)

// Event is the readiness reported to a reader or writer.
type Event = poller.Event

// Readiness bits passed to handlers.
const (
	Readable = poller.Read
	Writable = poller.Write
	Error    = poller.Error
)

// Handler is called on the hub goroutine when fd is ready.
type Handler func(fd int, ev Event)

// WaitMode selects how the hub blocks when it has nothing to do.
type WaitMode int

const (
	// WaitDefault picks the mode measured best on this platform.
	WaitDefault WaitMode = iota
	// WaitBlocking blocks the hub's thread in epoll_wait/kevent.
	WaitBlocking
	// WaitGosched polls without blocking, yields the processor once with
	// runtime.Gosched, polls again, and only then blocks in the system call.
	WaitGosched
	// WaitNetpoll parks the hub goroutine in Go's own netpoller until the
	// poller descriptor is readable, then polls it without blocking: the
	// thread and its P stay free for the goroutines the hub just readied.
	WaitNetpoll
)

func (m WaitMode) String() string {
	switch m {
	case WaitBlocking:
		return "blocking"
	case WaitGosched:
		return "gosched"
	case WaitNetpoll:
		return "netpoll"
	}
	return "default"
}

// Errors.
var (
	// ErrClosed is returned by calls on a closed hub.
	ErrClosed = errors.New("hub: closed")
	// ErrRunning is returned by Run, RunOnce and Close... when another
	// goroutine is driving the hub.
	ErrRunning = errors.New("hub: already run by another goroutine")
	// ErrNotRegistered is returned when removing an fd the hub does not watch.
	ErrNotRegistered = errors.New("hub: fd not registered")
)

// PanicError is a panic recovered from a callback.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("hub: callback panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Options configure a Hub. The zero value is ready to use.
type Options struct {
	// Clock is the time source of the timers. Default: the real clock.
	Clock timer.Clock
	// MaxTimersPerTurn bounds the timers fired in one turn (Kombu's
	// max_timers). Default: 10.
	MaxTimersPerTurn int
	// OnError receives panics recovered from callbacks (as *PanicError).
	// Returning nil keeps the loop going; returning an error stops Run and
	// RunOnce with it. Default (nil): stop with the panic's error.
	OnError func(error) error
	// Wait selects how the hub blocks. Default: WaitDefault.
	Wait WaitMode
	// Logger receives diagnostics (stale descriptors). Default: discard.
	Logger *slog.Logger
}

type entry struct {
	reader, writer Handler
	// since is the batch in which this fd got its current owner; events of
	// that batch predate the registration and are dropped.
	since uint64
	used  bool
}

// Hub is the event loop. Create it with New.
type Hub struct {
	p       *poller.Poller
	timers  *timer.Heap
	opts    Options
	maxTim  int
	fds     []entry
	nfds    int
	events  []poller.Ready
	batch   uint64
	ready   []func()
	running []func()
	ticks   []*tickHook
	onClose []func()
	waitF   *os.File
	waitRC  interface {
		Read(func(fd uintptr) bool) error
	}
	lastDeadline time.Time
	parkFn       func(uintptr) bool // h.parkReady, bound once
	parkN        int
	parkErr      error

	// token is held by the goroutine driving the hub (capacity 1); holder
	// says by what, so that Run and Drive wait out a short Call instead of
	// failing.
	token  chan struct{}
	holder atomic.Int32

	// postMu guards posts: other goroutines append, the hub swaps.
	postMu   sync.Mutex
	posts    []func()
	nposts   atomic.Int64 // posts appended so far, read without the lock
	taken    int64        // posts the hub has taken (hub goroutine only)
	sleeping atomic.Bool  // the hub is in, or about to enter, a blocking poll
	stopReq  atomic.Bool
	closed   atomic.Bool
	done     chan struct{} // closed once Close finished
	closeMu  sync.Mutex    // serialises Close callers
	kicked   atomic.Bool   // Wake was called: end the current poll
	closing  atomic.Bool   // Close is waiting for the driver to return
	err      error
	pending  error // the error that ends the current turn
	carry    error // a callback failure from Flush, returned by the next turn
	// until, while set by Drive or Call, is checked before the poll: once it
	// holds, the poll does not block, so the driver regains control.
	until func() bool
}

type tickHook struct{ fn func() }

// New creates a Hub with its poller.
func New(opts Options) (*Hub, error) {
	p, err := poller.New()
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h := &Hub{
		p:      p,
		timers: timer.New(opts.Clock),
		opts:   opts,
		maxTim: opts.MaxTimersPerTurn,
		events: make([]poller.Ready, 256),
		token:  make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if h.maxTim <= 0 {
		h.maxTim = 10
	}
	if h.opts.Logger == nil {
		h.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if h.opts.Wait == WaitDefault {
		h.opts.Wait = defaultWait
	}
	if h.opts.Wait == WaitNetpoll {
		if err := h.initNetpoll(); err != nil {
			// Fall back rather than fail: the poller works either way.
			h.opts.Logger.Debug("hub: netpoll wait unavailable, blocking instead", "err", err)
			h.opts.Wait = WaitBlocking
		}
	}
	return h, nil
}

// WaitMode reports the wait strategy in use.
func (h *Hub) WaitMode() WaitMode { return h.opts.Wait }

// Now returns the hub clock's time.
func (h *Hub) Now() time.Time { return h.timers.Now() }

func (h *Hub) slot(fd int) *entry {
	if fd >= len(h.fds) {
		n := 2 * len(h.fds)
		if n < 64 {
			n = 64
		}
		for n <= fd {
			n *= 2
		}
		grown := make([]entry, n)
		copy(grown, h.fds)
		h.fds = grown
	}
	return &h.fds[fd]
}

func (h *Hub) add(fd int, fn Handler, write bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if fd < 0 || fn == nil {
		return fmt.Errorf("hub: invalid registration of fd %d", fd)
	}
	e := h.slot(fd)
	if !e.used {
		ev := poller.Read
		if write {
			ev = poller.Write
		}
		if err := h.p.Add(fd, ev); err != nil {
			return fmt.Errorf("hub: add fd %d: %w", fd, err)
		}
		*e = entry{used: true, since: h.batch}
		h.nfds++
	} else {
		ev := poller.Event(0)
		if e.reader != nil || !write {
			ev |= poller.Read
		}
		if e.writer != nil || write {
			ev |= poller.Write
		}
		if err := h.p.Modify(fd, ev); err != nil {
			return fmt.Errorf("hub: modify fd %d: %w", fd, err)
		}
	}
	if write {
		e.writer = fn
	} else {
		e.reader = fn
	}
	return nil
}

// AddReader calls fn whenever fd is readable (or in error). Registering a
// reader again replaces the callback. Hub goroutine only.
func (h *Hub) AddReader(fd int, fn Handler) error { return h.add(fd, fn, false) }

// AddWriter calls fn whenever fd is writable. Hub goroutine only.
func (h *Hub) AddWriter(fd int, fn Handler) error { return h.add(fd, fn, true) }

func (h *Hub) remove(fd int, reader, writer bool) error {
	if fd < 0 || fd >= len(h.fds) || !h.fds[fd].used {
		return ErrNotRegistered
	}
	e := &h.fds[fd]
	if reader {
		e.reader = nil
	}
	if writer {
		e.writer = nil
	}
	if e.reader == nil && e.writer == nil {
		*e = entry{}
		h.nfds--
		if h.closed.Load() {
			return nil
		}
		if err := h.p.Remove(fd); err != nil && !errors.Is(err, poller.ErrNotRegistered) {
			return fmt.Errorf("hub: remove fd %d: %w", fd, err)
		}
		return nil
	}
	ev := poller.Read
	if e.reader == nil {
		ev = poller.Write
	}
	if err := h.p.Modify(fd, ev); err != nil {
		return fmt.Errorf("hub: modify fd %d: %w", fd, err)
	}
	return nil
}

// RemoveReader stops watching fd for reading; a writer on fd stays.
func (h *Hub) RemoveReader(fd int) error { return h.remove(fd, true, false) }

// RemoveWriter stops watching fd for writing; a reader on fd stays.
func (h *Hub) RemoveWriter(fd int) error { return h.remove(fd, false, true) }

// Remove stops watching fd entirely. Call it before closing fd. Events of
// fd still pending in the current batch are dropped, even if fd is
// registered again meanwhile.
func (h *Hub) Remove(fd int) error { return h.remove(fd, true, true) }

// Registered reports how many descriptors the hub watches.
func (h *Hub) Registered() int { return h.nfds }

// CallSoon schedules fn for the next turn. Hub goroutine only; use Post from
// other goroutines.
func (h *Hub) CallSoon(fn func()) { h.ready = append(h.ready, fn) }

// CallLater runs fn once after d. Hub goroutine only.
func (h *Hub) CallLater(d time.Duration, fn func()) *timer.Entry { return h.timers.After(d, fn) }

// CallAt runs fn once at t. Hub goroutine only.
func (h *Hub) CallAt(t time.Time, fn func()) *timer.Entry { return h.timers.At(t, fn) }

// CallRepeatedly runs fn every d, first after d. Hub goroutine only.
func (h *Hub) CallRepeatedly(d time.Duration, fn func()) *timer.Entry {
	return h.timers.Every(d, fn)
}

// OnTick registers fn to run on every turn, before the poll, and returns a
// function that unregisters it. Hub goroutine only.
func (h *Hub) OnTick(fn func()) (remove func()) {
	t := &tickHook{fn: fn}
	h.ticks = append(h.ticks, t)
	return func() {
		for i, x := range h.ticks {
			if x == t {
				h.ticks = append(h.ticks[:i:i], h.ticks[i+1:]...)
				return
			}
		}
	}
}

// OnClose registers fn to run when the hub closes. Hub goroutine only.
func (h *Hub) OnClose(fn func()) { h.onClose = append(h.onClose, fn) }

// Post schedules fn to run on the hub goroutine. Safe for concurrent use; fn
// runs in the next turn of whoever drives the hub. Posts made after Close
// are dropped.
func (h *Hub) Post(fn func()) {
	if h.closed.Load() {
		return
	}
	h.postMu.Lock()
	h.posts = append(h.posts, fn)
	h.postMu.Unlock()
	h.nposts.Add(1)
	if h.sleeping.Load() {
		h.p.Wake()
	}
}

// Wake interrupts the poll of a blocked hub so that it runs a turn. Safe for
// concurrent use.
func (h *Hub) Wake() {
	if !h.closed.Load() {
		h.kicked.Store(true)
		h.p.Wake()
	}
}

// Stop makes Run return after the current turn. Safe for concurrent use.
func (h *Hub) Stop() {
	h.stopReq.Store(true)
	h.Wake()
}

// Kinds of token holders.
const (
	holdNone  int32 = iota
	holdRun         // Run: a long-lived driver
	holdDrive       // Drive, RunOnce: a driver with its own end condition
	holdCall        // Call, Flush, Close: short
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
// (Call, Flush) is waited for; a Run or Drive holder gives ErrRunning.
func (h *Hub) acquireAs(ctx context.Context, kind int32) error {
	for {
		if h.acquire() {
			h.holder.Store(kind)
			return nil
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

// Flush runs the callbacks waiting for the next turn (posted or scheduled
// with CallSoon) on the calling goroutine, if no goroutine is driving the
// hub, and reports whether it did. It never blocks and never polls, so
// synchronous code that settles messages without driving the hub (a Get
// and Ack loop) can have its requests applied at once. Safe for concurrent
// use; in a hub callback it does nothing and returns false. A callback
// failure is returned by the next turn.
func (h *Hub) Flush() bool {
	if h.closed.Load() || !h.acquire() {
		return false
	}
	h.holder.Store(holdCall)
	defer h.release()
	saved := h.pending
	h.pending = nil
	h.runReady()
	if h.pending != nil && h.carry == nil {
		h.carry = h.pending
	}
	h.pending = saved
	return true
}

// RunOnce runs one turn, polling for at most maxWait (a negative maxWait
// waits as long as nothing happens). It returns ErrRunning when another
// goroutine drives the hub with Run or Drive; a Call in progress is waited
// for.
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
// waited for.
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
// driving the hub, the caller drives it until fn has run. Safe for
// concurrent use, but never from a hub callback (the hub would wait for
// itself). If ctx ends first, Call returns ctx.Err() and fn may still run
// later.
func (h *Hub) Call(ctx context.Context, fn func()) error {
	if h.closed.Load() {
		return ErrClosed
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
// drives the hub with Run or Drive; a Call in progress is waited for. It is how synchronous APIs such as
// DrainEvents wait for their event.
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
// Run to return first. Idempotent and safe for concurrent use, but never
// from a hub callback: call Stop there.
func (h *Hub) Close() error {
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
	h.token <- struct{}{} // wait for a running loop (Run, Drive, Call) to return
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

// safe runs fn, turning a panic into a *PanicError for the error policy.
func (h *Hub) safe(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			h.fail(&PanicError{Value: r, Stack: debug.Stack()})
		}
	}()
	fn()
}

func (h *Hub) safeIO(fn Handler, fd int, ev Event) {
	defer func() {
		if r := recover(); r != nil {
			h.fail(&PanicError{Value: r, Stack: debug.Stack()})
		}
	}()
	fn(fd, ev)
}

// failure is the error that ends the current turn, if any.
func (h *Hub) fail(err error) {
	if h.opts.OnError != nil {
		err = h.opts.OnError(err)
	}
	if err != nil && h.pending == nil {
		h.pending = err
	}
}

func (h *Hub) runReady() {
	h.running, h.ready = h.ready, h.running[:0]
	for i, fn := range h.running {
		h.running[i] = nil
		h.safe(fn)
	}
	h.running = h.running[:0]
	if h.nposts.Load() != h.taken {
		h.postMu.Lock()
		posts := h.posts
		h.posts = nil
		h.postMu.Unlock()
		h.taken += int64(len(posts))
		for _, fn := range posts {
			h.safe(fn)
		}
	}
}

// turn runs one loop turn; the caller holds the token.
func (h *Hub) turn(maxWait time.Duration) error {
	h.pending, h.carry = h.carry, nil
	h.runReady()
	for _, t := range h.ticks {
		h.safe(t.fn)
	}
	now := h.timers.Now()
	for i := 0; i < h.maxTim; i++ {
		fn, ok := h.timers.PopDue(now)
		if !ok {
			break
		}
		h.safe(fn)
	}
	if h.pending != nil {
		return h.pending
	}
	wait := h.timers.Until(maxWait) // maxWait < 0: no bound but the timers
	if len(h.ready) > 0 || h.stopReq.Load() || (h.until != nil && h.until()) {
		wait = 0
	}
	n, err := h.poll(wait)
	if err != nil {
		return fmt.Errorf("hub: poll: %w", err)
	}
	h.batch++
	for i := 0; i < n; i++ {
		r := h.events[i]
		fd := int(r.Fd)
		if fd >= len(h.fds) || !h.fds[fd].used {
			// Nobody owns it: a stale registration. Drop it from the poller.
			h.p.Remove(fd)
			h.opts.Logger.Debug("hub: dropped event for unknown fd", "fd", fd)
			continue
		}
		e := &h.fds[fd]
		if e.since == h.batch {
			continue // registered during this batch: the event is older
		}
		if r.Events&(Readable|Error) != 0 && e.reader != nil {
			h.safeIO(e.reader, fd, r.Events)
			e = &h.fds[fd] // the callback may have grown the table
			if !e.used || e.since == h.batch {
				continue
			}
		}
		if r.Events&Writable != 0 && e.writer != nil {
			h.safeIO(e.writer, fd, r.Events)
		} else if r.Events&Error != 0 && e.reader == nil && e.writer != nil {
			h.safeIO(e.writer, fd, r.Events)
		}
	}
	return h.pending
}

// poll waits for events according to the wait mode. The sleeping flag is
// raised before the final check for posts, and Post reads it after
// appending, so a post either is seen here or wakes the poll (both sides use
// sequentially consistent atomics).
func (h *Hub) poll(wait time.Duration) (int, error) {
	if wait != 0 {
		h.sleeping.Store(true)
		if h.wakeDue() {
			wait = 0
		}
	}
	var n int
	var err error
	switch {
	case wait == 0:
		n, err = h.p.Wait(h.events, 0)
	case h.opts.Wait == WaitNetpoll:
		n, err = h.pollNetpoll(wait)
	case h.opts.Wait == WaitGosched:
		// Each non-blocking Wait may drain a wake-up whose reason (a post or
		// a kick) must then be seen here, or the blocking Wait would sleep
		// through it.
		n, err = h.p.Wait(h.events, 0)
		if n == 0 && err == nil && !h.wakeDue() {
			runtime.Gosched()
			n, err = h.p.Wait(h.events, 0)
			if n == 0 && err == nil && !h.wakeDue() {
				n, err = h.p.Wait(h.events, wait)
			}
		}
	default:
		n, err = h.p.Wait(h.events, wait)
	}
	h.sleeping.Store(false)
	h.kicked.Store(false)
	return n, err
}

// wakeDue reports whether the hub has a reason to end its poll without an
// event: posts to run or a Wake.
func (h *Hub) wakeDue() bool {
	return h.nposts.Load() != h.taken || h.kicked.Load()
}
