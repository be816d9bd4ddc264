//go:build !unix

package bench

import (
	"time"

	"github.com/kombu-go/kombu/poller"
)

// The poller benchmarks need epoll or kqueue; elsewhere they report the
// poller's ErrUnsupported.

// RunRing reports poller.ErrUnsupported on this platform.
func RunRing(impl string, n, events int) (RingResult, error) {
	return RingResult{}, poller.ErrUnsupported
}

// Wakeup reports poller.ErrUnsupported on this platform.
func Wakeup(iters, rounds int) ([]WakeResult, error) { return nil, poller.ErrUnsupported }

func processCPU() time.Duration { return 0 }
