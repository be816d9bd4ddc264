package bench

import (
	"sort"

	"github.com/kombu-go/kombu/hub"
)

// RingResult is one token-ring measurement.
type RingResult struct {
	Impl           string  `json:"impl"`
	Fds            int     `json:"fds"`
	NsPerEvent     float64 `json:"ns_per_event"`
	AllocsPerEvent float64 `json:"allocs_per_event"`
	// Goroutines is the goroutine count seen while the ring ran.
	Goroutines int `json:"goroutines"`
}

// Ring implementations. ImplHub uses the hub's default wait mode;
// "hub-blocking", "hub-gosched" and "hub-netpoll" force one.
const (
	ImplHub        = "hub"
	ImplRawEpoll   = "raw-epoll"
	ImplGoroutines = "goroutines"
)

// WakeResult is the round trip of one wake-up mechanism: another goroutine
// signals an idle waiter, which answers on a Go channel.
type WakeResult struct {
	Mode string  `json:"mode"`
	Ns   float64 `json:"ns"`
}

// Wake-up mechanisms measured by Wakeup.
const (
	WakeChan    = "chan"            // floor: Go channel ping-pong
	WakeNetpoll = "netpoll-eventfd" // floor for an fd: a goroutine parked in Go's netpoller
	WakeRaw     = "raw-epoll-block" // the trap: a thread blocked in epoll_wait(-1)
	wakeHubPref = "hub-"            // hub-blocking, hub-gosched, hub-netpoll
)

// HubWaitModes are the hub wait modes Wakeup measures.
var HubWaitModes = []hub.WaitMode{hub.WaitBlocking, hub.WaitGosched, hub.WaitNetpoll}

// Median returns the median of xs (which it sorts).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 1 {
		return xs[m]
	}
	return (xs[m-1] + xs[m]) / 2
}
