//go:build !linux && !darwin && !freebsd

package filesystem

import "errors"

// watchKind names the notification mechanism: none here.
const watchKind = "none"

// watcher does not exist on this platform: consumers poll every
// polling_interval, as Kombu does.
type watcher struct{}

func newWatcher(dir string) (*watcher, error) {
	return nil, errors.New("filesystem: no file notification on this platform")
}

func (w *watcher) FD() int                                   { return -1 }
func (w *watcher) drain(fn func(queue string)) (bool, error) { return true, nil }
func (w *watcher) close() error                              { return nil }
