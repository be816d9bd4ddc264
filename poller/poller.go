package poller

import "errors"

// Event is a set of readiness conditions.
type Event uint32

// Readiness conditions. Error covers error and hang-up conditions.
const (
	Read Event = 1 << iota
	Write
	Error
)

// String renders the set as Kombu's debug letters: R, W and ! for Error.
func (e Event) String() string {
	if e == 0 {
		return "-"
	}
	var b [3]byte
	n := 0
	if e&Read != 0 {
		b[n] = 'R'
		n++
	}
	if e&Write != 0 {
		b[n] = 'W'
		n++
	}
	if e&Error != 0 {
		b[n] = '!'
		n++
	}
	return string(b[:n])
}

// Ready is one descriptor reported by Wait.
type Ready struct {
	Fd     int32
	Events Event
}

// Errors returned by every implementation.
var (
	// ErrUnsupported is returned by New where no poller implementation exists.
	ErrUnsupported = errors.New("poller: not supported on this platform")
	// ErrClosed is returned by calls on a closed poller.
	ErrClosed = errors.New("poller: closed")
	// ErrRegistered is returned by Add for a descriptor already registered.
	ErrRegistered = errors.New("poller: fd already registered")
	// ErrNotRegistered is returned by Modify and Remove for an unknown fd.
	ErrNotRegistered = errors.New("poller: fd not registered")
	// ErrNoInterest is returned by Add and Modify when neither Read nor
	// Write is asked for.
	ErrNoInterest = errors.New("poller: no read or write interest")
)
