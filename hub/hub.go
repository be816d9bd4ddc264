package hub

import (
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
	// ErrRunning is returned by Run, RunOnce and Drive when another
	// goroutine is driving the hub.
	ErrRunning = errors.New("hub: already run by another goroutine")
	// ErrNotRegistered is returned when removing an fd the hub does not watch.
	ErrNotRegistered = errors.New("hub: fd not registered")
	// ErrInCallback is returned by the calls that wait for the hub (Close,
	// Call, and Run, RunOnce and Drive when they would wait) when they are
	// made from loop work (see [InCallback]): the hub would wait for
	// itself. Stop the loop with Stop, and do the rest from the goroutine
	// that drives the hub once Run has returned, or from another goroutine.
	ErrInCallback = errors.New("hub: called from a hub callback")
	// ErrNotOwner is returned (wrapped) when a method reserved to the hub
	// goroutine is called from another goroutine while the hub is driven.
	// See [Options.CheckOwner] for when it is detected.
	ErrNotOwner = errors.New("hub: hub-only method called off the hub goroutine while the hub runs")
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
	// CheckOwner makes every hub-only method (AddReader, AddWriter, the
	// Remove methods, Registered, CallSoon, CallLater, CallAt,
	// CallRepeatedly, OnTick, OnClose) check that it is called as the
	// hub's owner whenever some goroutine holds the hub (Run, RunOnce,
	// Drive, a Call or Close doing so, TryOwn): the call must come from
	// loop work (see [InCallback]). A method that returns an error then
	// returns one wrapping [ErrNotOwner]; the others panic with such an
	// error, a programmer error. The check walks the caller's stack, a
	// microsecond or so per call: it is meant for tests. Setting the
	// environment variable KOMBU_HUB_CHECKOWNER=1 turns it on for every
	// hub created afterwards (this project's test mains do, so hubs made
	// inside other packages are checked too).
	//
	// Without CheckOwner, the methods that return an error still make a
	// cheap check that has no false positives: called while a driver is
	// blocked in its poll, they return an error wrapping ErrNotOwner.
	CheckOwner bool
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
	// ownMu serialises TryOwn callers. They are goroutines that do not
	// drive the hub (acks of a synchronous Get and Ack loop, or of several
	// worker goroutines while nobody drives), so the hub goroutine cannot
	// own what decides which of them holds the hub next; with the mutex a
	// TryOwn waits for another one's short work instead of giving up.
	ownMu sync.Mutex

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
	if os.Getenv(checkOwnerEnv) == "1" {
		h.opts.CheckOwner = true
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
	if err := h.checkOwner("add fd"); err != nil {
		return err
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
	if err := h.checkOwner("remove fd"); err != nil {
		return err
	}
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
func (h *Hub) Registered() int {
	h.mustOwn("Registered")
	return h.nfds
}

// CallSoon schedules fn for the next turn. Hub goroutine only; use Post from
// other goroutines.
func (h *Hub) CallSoon(fn func()) {
	h.mustOwn("CallSoon")
	h.ready = append(h.ready, fn)
}

// CallLater runs fn once after d. Hub goroutine only.
func (h *Hub) CallLater(d time.Duration, fn func()) *timer.Entry {
	h.mustOwn("CallLater")
	return h.timers.After(d, fn)
}

// CallAt runs fn once at t. Hub goroutine only.
func (h *Hub) CallAt(t time.Time, fn func()) *timer.Entry {
	h.mustOwn("CallAt")
	return h.timers.At(t, fn)
}

// CallRepeatedly runs fn every d, first after d. Hub goroutine only.
func (h *Hub) CallRepeatedly(d time.Duration, fn func()) *timer.Entry {
	h.mustOwn("CallRepeatedly")
	return h.timers.Every(d, fn)
}

// OnTick registers fn to run on every turn, before the poll, and returns a
// function that unregisters it. Hub goroutine only.
func (h *Hub) OnTick(fn func()) (remove func()) {
	h.mustOwn("OnTick")
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
func (h *Hub) OnClose(fn func()) {
	h.mustOwn("OnClose")
	h.onClose = append(h.onClose, fn)
}

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
	h.pending = nil
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
