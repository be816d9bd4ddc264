//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package poller

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is the kqueue implementation. See the package documentation for the
// contract. kqueue keeps one filter per direction, so the poller remembers
// each fd's interest to turn Modify into the right adds and deletes.
type Poller struct {
	kq       int
	interest map[int]Event
	woken    atomic.Uint32
	// wakeMu orders Wake (any goroutine) against Close; see poller_epoll.go.
	wakeMu     sync.RWMutex
	wakeClosed bool
	wake       wakeup
	events     []unix.Kevent_t
	changes    []unix.Kevent_t
	closed     bool
}

// New creates a kqueue poller with its wake-up.
func New() (*Poller, error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, os.NewSyscallError("kqueue", err)
	}
	unix.CloseOnExec(kq)
	p := &Poller{kq: kq, interest: make(map[int]Event), events: make([]unix.Kevent_t, 128)}
	if err := p.wake.init(kq); err != nil {
		unix.Close(kq)
		return nil, err
	}
	return p, nil
}

// Fd returns the kqueue descriptor, so an owner can wait for it to become
// readable elsewhere (in Go's netpoller). It stays owned by the Poller.
func (p *Poller) Fd() int { return p.kq }

func (p *Poller) apply(fd int, old, ev Event) error {
	p.changes = p.changes[:0]
	add := func(filter, flags int) {
		var k unix.Kevent_t
		unix.SetKevent(&k, fd, filter, flags)
		p.changes = append(p.changes, k)
	}
	if ev&Read != 0 && old&Read == 0 {
		add(unix.EVFILT_READ, unix.EV_ADD)
	}
	if ev&Read == 0 && old&Read != 0 {
		add(unix.EVFILT_READ, unix.EV_DELETE)
	}
	if ev&Write != 0 && old&Write == 0 {
		add(unix.EVFILT_WRITE, unix.EV_ADD)
	}
	if ev&Write == 0 && old&Write != 0 {
		add(unix.EVFILT_WRITE, unix.EV_DELETE)
	}
	if len(p.changes) == 0 {
		return nil
	}
	for {
		_, err := unix.Kevent(p.kq, p.changes, nil, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("kevent", err)
		}
		return nil
	}
}

// Add registers fd for the conditions in ev.
func (p *Poller) Add(fd int, ev Event) error {
	if p.closed {
		return ErrClosed
	}
	if ev&(Read|Write) == 0 {
		return ErrNoInterest
	}
	if _, ok := p.interest[fd]; ok {
		return ErrRegistered
	}
	if err := p.apply(fd, 0, ev); err != nil {
		return err
	}
	p.interest[fd] = ev & (Read | Write)
	return nil
}

// Modify replaces the conditions fd is registered for.
func (p *Poller) Modify(fd int, ev Event) error {
	if p.closed {
		return ErrClosed
	}
	if ev&(Read|Write) == 0 {
		return ErrNoInterest
	}
	old, ok := p.interest[fd]
	if !ok {
		return ErrNotRegistered
	}
	if err := p.apply(fd, old, ev); err != nil {
		return err
	}
	p.interest[fd] = ev & (Read | Write)
	return nil
}

// Remove unregisters fd. Call it before closing fd.
func (p *Poller) Remove(fd int) error {
	if p.closed {
		return ErrClosed
	}
	old, ok := p.interest[fd]
	if !ok {
		return ErrNotRegistered
	}
	delete(p.interest, fd)
	err := p.apply(fd, old, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EBADF) {
		// The kernel already dropped the filters (the fd was closed).
		return nil
	}
	return err
}

// Wait reports ready descriptors into out and returns how many. A
// descriptor ready for reading and writing appears twice, once per filter.
func (p *Poller) Wait(out []Ready, timeout time.Duration) (int, error) {
	if p.closed {
		return 0, ErrClosed
	}
	if len(out) == 0 {
		return 0, nil
	}
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	evs := p.events
	if len(out) < len(evs) {
		evs = evs[:len(out)]
	}
	n, err := unix.Kevent(p.kq, nil, evs, ts)
	if err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, os.NewSyscallError("kevent", err)
	}
	k := 0
	for i := 0; i < n; i++ {
		e := &evs[i]
		if p.wake.is(e) {
			p.wake.drain()
			p.woken.Store(0)
			continue
		}
		var r Event
		switch int(e.Filter) {
		case unix.EVFILT_READ:
			r = Read
		case unix.EVFILT_WRITE:
			r = Write
		}
		if e.Flags&unix.EV_EOF != 0 && r == Write {
			r |= Error
		}
		if e.Flags&unix.EV_ERROR != 0 {
			r |= Error
		}
		out[k] = Ready{Fd: int32(e.Ident), Events: r}
		k++
	}
	return k, nil
}

// Wake interrupts a Wait in progress, or makes the next one return at once.
// Safe for concurrent use; coalesced.
func (p *Poller) Wake() error {
	if !p.woken.CompareAndSwap(0, 1) {
		return nil
	}
	p.wakeMu.RLock()
	defer p.wakeMu.RUnlock()
	if p.wakeClosed {
		return ErrClosed
	}
	if err := p.wake.trigger(p.kq); err != nil {
		p.woken.Store(0)
		return err
	}
	return nil
}

// Close releases the kqueue and the wake-up. Idempotent.
func (p *Poller) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	p.wakeMu.Lock()
	p.wakeClosed = true
	p.wake.close()
	p.wakeMu.Unlock()
	if err := unix.Close(p.kq); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
