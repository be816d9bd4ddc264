//go:build darwin || dragonfly || freebsd

package poller

import (
	"os"

	"golang.org/x/sys/unix"
)

// wakeIdent is the EVFILT_USER identifier of the wake-up event. It shares no
// namespace with file descriptors.
const wakeIdent = 0x6b6f6d62 // "komb"

// wakeup uses an EVFILT_USER event: no descriptor at all.
type wakeup struct{}

func (wakeup) init(kq int) error {
	var k unix.Kevent_t
	unix.SetKevent(&k, wakeIdent, unix.EVFILT_USER, unix.EV_ADD|unix.EV_CLEAR)
	if _, err := unix.Kevent(kq, []unix.Kevent_t{k}, nil, nil); err != nil {
		return os.NewSyscallError("kevent", err)
	}
	return nil
}

func (wakeup) is(e *unix.Kevent_t) bool {
	return int(e.Filter) == unix.EVFILT_USER && e.Ident == wakeIdent
}

// drain has nothing to do: EV_CLEAR resets the event when it is reported.
func (wakeup) drain() {}

func (wakeup) trigger(kq int) error {
	var k unix.Kevent_t
	unix.SetKevent(&k, wakeIdent, unix.EVFILT_USER, 0)
	k.Fflags = unix.NOTE_TRIGGER
	for {
		_, err := unix.Kevent(kq, []unix.Kevent_t{k}, nil, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("kevent", err)
		}
		return nil
	}
}

func (wakeup) close() {}
