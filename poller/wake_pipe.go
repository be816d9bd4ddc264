//go:build netbsd || openbsd

package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// wakeup uses a non-blocking pipe where EVFILT_USER is missing.
type wakeup struct{ r, w int }

func (wk *wakeup) init(kq int) error {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	wk.r, wk.w = fds[0], fds[1]
	var k unix.Kevent_t
	unix.SetKevent(&k, wk.r, unix.EVFILT_READ, unix.EV_ADD)
	if _, err := unix.Kevent(kq, []unix.Kevent_t{k}, nil, nil); err != nil {
		wk.close()
		return os.NewSyscallError("kevent", err)
	}
	return nil
}

func (wk *wakeup) is(e *unix.Kevent_t) bool {
	return int(e.Filter) == unix.EVFILT_READ && int(e.Ident) == wk.r
}

func (wk *wakeup) drain() {
	var buf [64]byte
	for {
		n, err := unix.Read(wk.r, buf[:])
		if n <= 0 || err != nil {
			return
		}
	}
}

func (wk *wakeup) trigger(int) error {
	_, err := unix.Write(wk.w, []byte{1})
	if err != nil && err != unix.EAGAIN { // EAGAIN: the pipe is full, a wake-up is pending.
		return os.NewSyscallError("write", err)
	}
	return nil
}

func (wk *wakeup) close() {
	unix.Close(wk.r)
	unix.Close(wk.w)
}
