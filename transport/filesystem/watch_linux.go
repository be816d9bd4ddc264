package filesystem

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchKind names the notification mechanism, for Info and logs.
const watchKind = "inotify"

// watcher is an inotify instance watching the in folder. Its descriptor
// is non-blocking and sits in the hub's poller; reading the pending events
// is a non-blocking read, done on the hub.
type watcher struct {
	fd  int
	buf []byte
}

// newWatcher watches dir for files closed after writing (Kombu's _put) and
// files renamed into it (our publishes, restores, Kombu's restores).
func newWatcher(dir string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("filesystem: inotify_init1: %w", err)
	}
	mask := uint32(unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR)
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("filesystem: inotify_add_watch %s: %w", dir, err)
	}
	return &watcher{fd: fd, buf: make([]byte, 64*1024)}, nil
}

// FD is the descriptor to register in the hub.
func (w *watcher) FD() int { return w.fd }

// drain reads every pending event. It calls fn with the queue of each
// message file that arrived, or with "" when it cannot tell (the event
// queue overflowed: look at every queue). lost reports that the folder
// itself was removed or moved away: the watch is gone.
func (w *watcher) drain(fn func(queue string)) (lost bool, err error) {
	for {
		n, err := unix.Read(w.fd, w.buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			return lost, nil
		}
		if err != nil {
			return lost, fmt.Errorf("filesystem: read inotify: %w", err)
		}
		if n <= 0 {
			return lost, nil
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			nameLen := int(ev.Len)
			end := off + unix.SizeofInotifyEvent + nameLen
			if end > n {
				break
			}
			switch {
			case ev.Mask&unix.IN_Q_OVERFLOW != 0:
				fn("")
			case ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
				lost = true
			case nameLen > 0:
				name := w.buf[off+unix.SizeofInotifyEvent : end]
				for i, c := range name {
					if c == 0 {
						name = name[:i]
						break
					}
				}
				if f, ok := parseName(string(name)); ok {
					fn(f.queue)
				}
			}
			off = end
		}
	}
}

// close releases the descriptor; remove it from the hub first.
func (w *watcher) close() error { return unix.Close(w.fd) }
