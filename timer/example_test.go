package timer_test

import (
	"fmt"
	"time"

	"github.com/kombu-go/kombu/timer"
)

// manualClock is a [timer.Clock] that moves only when told to. The tests in
// this package use it too.
type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time          { return c.now }
func (c *manualClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// A loop in the style of the hub: each turn it asks how long it may sleep,
// "sleeps" by advancing a fake clock, then runs every callback that is due.
func Example() {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &manualClock{now: start}
	h := timer.New(clock)
	elapsed := func() time.Duration { return clock.Now().Sub(start) }

	h.After(3*time.Second, func() { fmt.Println(elapsed(), "once") })
	runs := 0
	var tick *timer.Entry
	tick = h.Every(2*time.Second, func() {
		runs++
		fmt.Println(elapsed(), "tick", runs)
		if runs == 3 {
			tick.Cancel() // stops the series from inside its own callback
		}
	})

	for h.Len() > 0 {
		wait := h.Until(10 * time.Second) // the poll timeout
		clock.Advance(wait)
		for {
			fn, ok := h.PopDue(clock.Now())
			if !ok {
				break
			}
			fn()
		}
	}
	_, ok := h.Next()
	fmt.Println("pending:", h.Len(), ok)
	// Output:
	// 2s tick 1
	// 3s once
	// 4s tick 2
	// 6s tick 3
	// pending: 0 false
}
