//go:build linux

package poller

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is the epoll implementation. See the package documentation for the
// contract.
type Poller struct {
	epfd   int
	wakefd int // eventfd, registered for reading
	// woken is 1 from the first Wake after a drain until the next drain, so
	// concurrent Wakes cost one eventfd write.
	woken atomic.Uint32
	// wakeMu orders Wake (any goroutine) against Close: a Wake must never
	// write to the eventfd number after Close released it, since the number
	// may already belong to someone else.
	wakeMu     sync.RWMutex
	wakeClosed bool
	events     []unix.EpollEvent
	closed     bool
}

// New creates an epoll poller with an eventfd wake-up.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(wfd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &Poller{epfd: epfd, wakefd: wfd, events: make([]unix.EpollEvent, 128)}, nil
}

// Fd returns the epoll descriptor, so an owner can wait for it to become
// readable elsewhere (in Go's netpoller). It stays owned by the Poller.
func (p *Poller) Fd() int { return p.epfd }

func epollMask(ev Event) uint32 {
	var m uint32
	if ev&Read != 0 {
		m |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if ev&Write != 0 {
		m |= unix.EPOLLOUT
	}
	return m
}

func (p *Poller) ctl(op, fd int, ev Event) error {
	if p.closed {
		return ErrClosed
	}
	if op != unix.EPOLL_CTL_DEL && ev&(Read|Write) == 0 {
		return ErrNoInterest
	}
	e := unix.EpollEvent{Events: epollMask(ev), Fd: int32(fd)}
	err := unix.EpollCtl(p.epfd, op, fd, &e)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return ErrRegistered
	case errors.Is(err, unix.ENOENT):
		return ErrNotRegistered
	}
	return os.NewSyscallError("epoll_ctl", err)
}

// Add registers fd for the conditions in ev.
func (p *Poller) Add(fd int, ev Event) error { return p.ctl(unix.EPOLL_CTL_ADD, fd, ev) }

// Modify replaces the conditions fd is registered for.
func (p *Poller) Modify(fd int, ev Event) error { return p.ctl(unix.EPOLL_CTL_MOD, fd, ev) }

// Remove unregisters fd. Call it before closing fd.
func (p *Poller) Remove(fd int) error { return p.ctl(unix.EPOLL_CTL_DEL, fd, 0) }

// Wait reports ready descriptors into out and returns how many. See the
// package documentation for the timeout and EINTR rules.
func (p *Poller) Wait(out []Ready, timeout time.Duration) (int, error) {
	if p.closed {
		return 0, ErrClosed
	}
	if len(out) == 0 {
		return 0, nil
	}
	msec := -1
	if timeout >= 0 {
		// Round up, so a 100 µs timer is not polled as 0 ms in a busy loop.
		msec = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	evs := p.events
	if len(out) < len(evs) {
		evs = evs[:len(out)]
	}
	n, err := unix.EpollWait(p.epfd, evs, msec)
	if err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	k := 0
	for i := 0; i < n; i++ {
		e := &evs[i]
		if int(e.Fd) == p.wakefd {
			p.drainWake()
			continue
		}
		var r Event
		if e.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLPRI) != 0 {
			r |= Read
		}
		if e.Events&unix.EPOLLOUT != 0 {
			r |= Write
		}
		if e.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			r |= Error
		}
		out[k] = Ready{Fd: e.Fd, Events: r}
		k++
	}
	return k, nil
}

func (p *Poller) drainWake() {
	var buf [8]byte
	// One read resets the eventfd counter; EAGAIN means another drain won.
	unix.Read(p.wakefd, buf[:])
	p.woken.Store(0)
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
	one := [8]byte{1}
	for {
		_, err := unix.Write(p.wakefd, one[:])
		switch err {
		case nil, unix.EAGAIN: // EAGAIN: the counter is saturated, a wake-up is pending anyway.
			return nil
		case unix.EINTR:
			continue
		}
		p.woken.Store(0)
		return os.NewSyscallError("write", err)
	}
}

// Close releases the epoll and eventfd descriptors. Idempotent.
func (p *Poller) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	p.wakeMu.Lock()
	p.wakeClosed = true
	err1 := unix.Close(p.wakefd)
	p.wakeMu.Unlock()
	err2 := unix.Close(p.epfd)
	if err1 != nil {
		return os.NewSyscallError("close", err1)
	}
	if err2 != nil {
		return os.NewSyscallError("close", err2)
	}
	return nil
}
