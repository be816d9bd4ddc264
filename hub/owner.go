package hub

import (
	"fmt"
	"runtime"
)

// checkOwnerEnv, set to 1, turns Options.CheckOwner on for every hub New
// creates (see there).
const checkOwnerEnv = "KOMBU_HUB_CHECKOWNER"

// InCallback reports whether the calling goroutine is doing loop work of a
// Hub, any Hub: running a callback (a reader or writer, a timer, a tick
// hook, a function given to CallSoon, Post, Call or OnClose), a Drive
// condition, or a function given to TryOwn. The calls that wait for a hub
// (Close, Call, and Run, RunOnce and Drive when they would wait) return
// [ErrInCallback] there instead of waiting for themselves; packages above
// the hub use InCallback to refuse their own waiting calls the same way
// (a transport channel's Close, for one).
//
// Go gives goroutines no identity, so InCallback looks for the hub's loop
// in the caller's stack: about a microsecond. A goroutine started from a
// callback is not in the loop.
func InCallback() bool { return onLoop() }

// loopPrefix is how the runtime names the Hub's methods. The methods named
// in onLoop run every piece of loop work below them.
const loopPrefix = "github.com/kombu-go/kombu/hub.(*Hub)."

// onLoop reports whether a frame of the caller's stack runs loop work:
// safe and safeIO run the callbacks (in a turn and in Close), turn and
// drive call Drive's condition, TryOwn runs its function. None of these
// calls onLoop itself, so no frame needs skipping.
func onLoop() bool {
	var buf [64]uintptr
	pcs := buf[:]
	n := runtime.Callers(2, pcs)
	for n == len(pcs) {
		pcs = make([]uintptr, 2*len(pcs))
		n = runtime.Callers(2, pcs)
	}
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if len(f.Function) > len(loopPrefix) && f.Function[:len(loopPrefix)] == loopPrefix {
			switch f.Function[len(loopPrefix):] {
			case "safe", "safeIO", "turn", "drive", "TryOwn":
				return true
			}
		}
		if !more {
			return false
		}
	}
}

// checkOwner returns an error wrapping ErrNotOwner when a hub-only method is
// called by a goroutine that cannot be the hub's current owner, and nil when
// it may be. With nobody holding the hub, the caller may be its owner
// setting it up (or tearing it down) between runs. A driver blocked in its
// poll is not calling anything: that check is cheap and always made. With
// Options.CheckOwner, a caller that is not doing loop work is refused too.
func (h *Hub) checkOwner(op string) error {
	if h.holder.Load() == holdNone {
		return nil
	}
	if h.sleeping.Load() || (h.opts.CheckOwner && !onLoop()) {
		return fmt.Errorf("hub: %s: %w", op, ErrNotOwner)
	}
	return nil
}

// mustOwn is checkOwner for the hub-only methods without an error result:
// with Options.CheckOwner, a call off the hub goroutine panics (a programmer
// error, which would otherwise be a data race on the hub's state).
func (h *Hub) mustOwn(op string) {
	if !h.opts.CheckOwner {
		return
	}
	if err := h.checkOwner(op); err != nil {
		panic(err)
	}
}
