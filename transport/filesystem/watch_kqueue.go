//go:build darwin || freebsd

package filesystem

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// watchKind names the notification mechanism, for Info and logs.
const watchKind = "kqueue"

// watcher is a kqueue with an EVFILT_VNODE filter on the in folder. The
// kqueue descriptor is itself readable when an event is pending, so it
// sits in the hub's poller like any other; draining it is a kevent call
// with a zero timeout, done on the hub. A folder's NOTE_WRITE fires when
// a name is added or removed: a file renamed in (our publishes) is
// complete then; a file Kombu creates is still empty then, and is filled
// without another event on the folder (the consumer looks again shortly,
// see incompleteGrace).
type watcher struct {
	kq, dir int
	evs     [16]unix.Kevent_t
}

func newWatcher(dir string) (*watcher, error) {
	dfd, err := unix.Open(dir, openDirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("filesystem: open %s: %w", dir, err)
	}
	kq, err := unix.Kqueue()
	if err != nil {
		unix.Close(dfd)
		return nil, fmt.Errorf("filesystem: kqueue: %w", err)
	}
	unix.CloseOnExec(kq)
	if err := unix.SetNonblock(kq, true); err != nil {
		unix.Close(kq)
		unix.Close(dfd)
		return nil, fmt.Errorf("filesystem: kqueue: %w", err)
	}
	var ch [1]unix.Kevent_t
	unix.SetKevent(&ch[0], dfd, unix.EVFILT_VNODE, unix.EV_ADD|unix.EV_CLEAR)
	ch[0].Fflags = unix.NOTE_WRITE | unix.NOTE_DELETE | unix.NOTE_RENAME
	if _, err := unix.Kevent(kq, ch[:], nil, nil); err != nil {
		unix.Close(kq)
		unix.Close(dfd)
		return nil, fmt.Errorf("filesystem: kevent EVFILT_VNODE %s: %w", dir, err)
	}
	return &watcher{kq: kq, dir: dfd}, nil
}

// FD is the descriptor to register in the hub.
func (w *watcher) FD() int { return w.kq }

// drain takes the pending events. kqueue does not name the file, so fn is
// called with "" (look at every queue). lost reports that the folder was
// removed or renamed.
func (w *watcher) drain(fn func(queue string)) (lost bool, err error) {
	zero := unix.Timespec{}
	for {
		n, err := unix.Kevent(w.kq, nil, w.evs[:], &zero)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return lost, fmt.Errorf("filesystem: kevent: %w", err)
		}
		if n == 0 {
			return lost, nil
		}
		for _, ev := range w.evs[:n] {
			if ev.Fflags&(unix.NOTE_DELETE|unix.NOTE_RENAME) != 0 {
				lost = true
			}
		}
		fn("")
		if n < len(w.evs) {
			return lost, nil
		}
	}
}

// close releases the descriptors; remove the kqueue from the hub first.
func (w *watcher) close() error {
	err := unix.Close(w.kq)
	if e := unix.Close(w.dir); err == nil {
		err = e
	}
	return err
}
