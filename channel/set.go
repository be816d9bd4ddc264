package channel

import (
	"fmt"
	"sync"

	"github.com/kombu-go/kombu/transport"
)

// Set is the channels of one connection of a transport built on this
// package: Add refuses a channel once Close has started, Remove forgets a
// channel that closed on its own, and Close hands every channel back to the
// connection to close, once. Done and Err give the connection's
// transport.Conn methods.
//
// Safe for concurrent use: connections open and close channels from any
// goroutine, so the hub goroutine cannot own the set.
type Set[T comparable] struct {
	mu     sync.Mutex
	chans  map[T]struct{}
	closed bool
	done   chan struct{}
}

// NewSet returns an empty, open set.
func NewSet[T comparable]() *Set[T] {
	return &Set[T]{chans: make(map[T]struct{}), done: make(chan struct{})}
}

// Add records ch; after Close it returns an error matching
// transport.ErrClosed. When added is not nil it runs under the set's lock
// once ch is recorded, so that what it starts (a hub.Post, say) is ordered
// before any Close; it must not block.
func (s *Set[T]) Add(ch T, added func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("channel: %w", transport.ErrClosed)
	}
	s.chans[ch] = struct{}{}
	if added != nil {
		added()
	}
	return nil
}

// Remove forgets ch.
func (s *Set[T]) Remove(ch T) {
	s.mu.Lock()
	delete(s.chans, ch)
	s.mu.Unlock()
}

// Any returns one of the channels, if there is one.
func (s *Set[T]) Any() (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.chans {
		return ch, true
	}
	var zero T
	return zero, false
}

// Closed reports whether Close has started.
func (s *Set[T]) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close marks the set closed and returns its channels, for the connection
// to close, and first = true. A later call returns first = false once the
// first caller has called Finish, so that every Close of the connection
// returns after the connection is closed.
func (s *Set[T]) Close() (chans []T, first bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil, false
	}
	s.closed = true
	chans = make([]T, 0, len(s.chans))
	for ch := range s.chans {
		chans = append(chans, ch)
	}
	clear(s.chans)
	s.mu.Unlock()
	return chans, true
}

// Finish marks the connection closed: Done is closed and Err reports
// transport.ErrClosed. The first caller of Close calls it once.
func (s *Set[T]) Finish() { close(s.done) }

// Done is closed by Finish.
func (s *Set[T]) Done() <-chan struct{} { return s.done }

// Err returns nil until Finish, then transport.ErrClosed.
func (s *Set[T]) Err() error {
	select {
	case <-s.done:
		return transport.ErrClosed
	default:
		return nil
	}
}
