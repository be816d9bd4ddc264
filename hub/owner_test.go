package hub_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/hub"
)

// hangGuard runs fn on its own goroutine and fails the test if it has not
// returned after a generous while: a hang is the defect these tests look
// for, and the deadline only keeps it from stalling the suite.
func hangGuard(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s hung", what)
	}
}

// runInBackground drives h with Run on another goroutine until the test
// ends, and returns once the loop has run a turn.
func runInBackground(t *testing.T, h *hub.Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, hub.ErrClosed) {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestInCallback: loop work of every kind is recognised as such, and
// nothing else is (the test goroutine, a goroutine a callback starts).
func TestInCallback(t *testing.T) {
	if hub.InCallback() {
		t.Fatal("InCallback on the test goroutine")
	}
	h := newHub(t, hub.Options{})
	r, w := pipe(t)
	seen := map[string]bool{}
	mark := func(kind string) { seen[kind] = hub.InCallback() }
	h.CallSoon(func() { mark("CallSoon") })
	h.Post(func() { mark("Post") })
	h.CallLater(0, func() { mark("timer") })
	remove := h.OnTick(func() { mark("tick") })
	h.AddReader(r, func(fd int, ev hub.Event) {
		var buf [8]byte
		unix.Read(fd, buf[:])
		mark("reader")
		h.Remove(fd)
	})
	unix.Write(w, []byte("x"))
	if err := h.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	remove()
	spawned := make(chan bool)
	h.CallSoon(func() { go func() { spawned <- hub.InCallback() }() })
	if err := h.RunOnce(0); err != nil {
		t.Fatal(err)
	}
	if <-spawned {
		t.Error("a goroutine started by a callback counts as loop work")
	}
	if err := h.Drive(context.Background(), func() bool { mark("Drive condition"); return true }); err != nil {
		t.Fatal(err)
	}
	if !h.TryOwn(func() { mark("TryOwn") }) {
		t.Fatal("TryOwn on an idle hub did not run")
	}
	h.OnClose(func() { mark("OnClose") })
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"CallSoon", "Post", "timer", "tick", "reader", "Drive condition", "TryOwn", "OnClose"} {
		if !seen[kind] {
			t.Errorf("InCallback is false in a %s", kind)
		}
	}
}

// TestCloseAndCallFromCallback: Close and Call made by loop work return
// ErrInCallback at once (they used to wait for themselves for ever), do
// nothing, and leave the hub working.
func TestCloseAndCallFromCallback(t *testing.T) {
	h := newHub(t, hub.Options{})
	var closeErr, callErr error
	called := false
	h.CallSoon(func() {
		closeErr = h.Close()
		callErr = h.Call(context.Background(), func() { called = true })
	})
	hangGuard(t, "RunOnce", func() {
		if err := h.RunOnce(0); err != nil {
			t.Error(err)
		}
	})
	if !errors.Is(closeErr, hub.ErrInCallback) || !errors.Is(callErr, hub.ErrInCallback) {
		t.Fatalf("from a callback: Close = %v, Call = %v; want ErrInCallback", closeErr, callErr)
	}
	// The refused Call posted nothing, and the hub is neither closed nor
	// closing.
	if err := h.RunOnce(0); err != nil || called {
		t.Fatalf("after the refused calls: RunOnce = %v, fn ran = %v", err, called)
	}
	select {
	case <-h.Done():
		t.Fatal("the refused Close closed the hub")
	default:
	}

	// The same from a posted function while Run drives the hub on another
	// goroutine, and from a timer.
	runInBackground(t, h)
	errs := make(chan error, 4)
	hangGuard(t, "Call from the test goroutine", func() {
		err := h.Call(context.Background(), func() {
			errs <- h.Close()
			errs <- h.Call(context.Background(), func() {})
			h.CallLater(0, func() {
				errs <- h.Close()
				errs <- h.Call(context.Background(), func() {})
			})
		})
		if err != nil {
			t.Error(err)
		}
		for range 4 {
			if err := <-errs; !errors.Is(err, hub.ErrInCallback) {
				t.Errorf("from loop work under Run: %v, want ErrInCallback", err)
			}
		}
	})
	// From another goroutine, Close still works and ends Run.
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCloseFromOnCloseHook: an OnClose hook runs inside Close; a Close or
// Call from it is refused instead of waiting on the Close that runs it.
func TestCloseFromOnCloseHook(t *testing.T) {
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var inner, call error
	h.OnClose(func() {
		inner = h.Close()
		call = h.Call(context.Background(), func() {})
	})
	hangGuard(t, "Close", func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	if !errors.Is(inner, hub.ErrInCallback) || !errors.Is(call, hub.ErrInCallback) {
		t.Fatalf("from an OnClose hook: Close = %v, Call = %v", inner, call)
	}
}

// TestDriversFromCallbackWhileCallDrives: while a Call drives the hub, a
// callback's RunOnce, Drive or Run used to wait for the Call, which waited
// for the callback. They now return ErrInCallback.
func TestDriversFromCallbackWhileCallDrives(t *testing.T) {
	h := newHub(t, hub.Options{})
	var errs []error
	hangGuard(t, "Call", func() {
		err := h.Call(context.Background(), func() {
			errs = append(errs,
				h.RunOnce(0),
				h.Drive(context.Background(), func() bool { return true }),
				h.Run(context.Background()))
		})
		if err != nil {
			t.Error(err)
		}
	})
	for i, err := range errs {
		if !errors.Is(err, hub.ErrInCallback) {
			t.Errorf("driver %d from a callback: %v, want ErrInCallback", i, err)
		}
	}
}

// TestTryOwn: TryOwn runs its function on an idle hub and nothing else of
// the loop; it declines while a driver holds the hub, from a callback, and
// after Close; several TryOwn callers take turns.
func TestTryOwn(t *testing.T) {
	h := newHub(t, hub.Options{})
	var log []string
	h.Post(func() { log = append(log, "posted") })
	h.CallSoon(func() { log = append(log, "soon") })
	h.CallLater(0, func() { log = append(log, "timer") })
	r, w := pipe(t)
	h.AddReader(r, func(fd int, ev hub.Event) {
		var buf [8]byte
		unix.Read(fd, buf[:])
		log = append(log, "reader")
	})
	unix.Write(w, []byte("x"))
	ran := h.TryOwn(func() {
		log = append(log, "owned")
		// The owner may use the hub-only methods.
		h.CallSoon(func() { log = append(log, "soon from owner") })
	})
	if !ran || len(log) != 1 || log[0] != "owned" {
		t.Fatalf("TryOwn on an idle hub: ran=%v log=%v, want only its own function", ran, log)
	}
	if err := h.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(log) != 6 {
		t.Fatalf("the next turn ran %v, want the posted, scheduled, timer and reader work", log[1:])
	}
	// From a callback the hub is held by its driver.
	var inner bool
	h.CallSoon(func() { inner = h.TryOwn(func() { t.Error("TryOwn ran inside a callback") }) })
	h.RunOnce(0)
	if inner {
		t.Fatal("TryOwn reported true inside a callback")
	}
	// Several goroutines at once: one at a time, each once.
	n := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if !h.TryOwn(func() { n++ }) {
					t.Error("TryOwn declined while only TryOwn callers held the hub")
				}
			}
		}()
	}
	wg.Wait()
	if n != 800 {
		t.Fatalf("n = %d, want 800", n)
	}
	// While Run holds the hub, TryOwn declines at once.
	runInBackground(t, h)
	if h.TryOwn(func() { t.Error("TryOwn ran while Run held the hub") }) {
		t.Fatal("TryOwn reported true while Run held the hub")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if h.TryOwn(func() { t.Error("TryOwn ran on a closed hub") }) {
		t.Fatal("TryOwn reported true on a closed hub")
	}
}

// TestNotOwnerDetected: with CheckOwner (on in these tests), hub-only
// methods called from another goroutine while Run drives the hub fail
// with ErrNotOwner (AddReader used to return nil and race), and work from
// loop work and from the owner between runs.
func TestNotOwnerDetected(t *testing.T) {
	h := newHub(t, hub.Options{CheckOwner: true})
	r, _ := pipe(t)
	noop := func(int, hub.Event) {}
	// Between runs the owner sets the hub up.
	if err := h.AddReader(r, noop); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(r); err != nil {
		t.Fatal(err)
	}
	runInBackground(t, h)
	for name, call := range map[string]func() error{
		"AddReader":    func() error { return h.AddReader(r, noop) },
		"AddWriter":    func() error { return h.AddWriter(r, noop) },
		"Remove":       func() error { return h.Remove(r) },
		"RemoveReader": func() error { return h.RemoveReader(r) },
		"RemoveWriter": func() error { return h.RemoveWriter(r) },
	} {
		if err := call(); !errors.Is(err, hub.ErrNotOwner) {
			t.Errorf("%s off the hub: %v, want ErrNotOwner", name, err)
		}
	}
	for name, call := range map[string]func(){
		"CallSoon":       func() { h.CallSoon(func() {}) },
		"CallLater":      func() { h.CallLater(time.Hour, func() {}) },
		"CallAt":         func() { h.CallAt(time.Now().Add(time.Hour), func() {}) },
		"CallRepeatedly": func() { h.CallRepeatedly(time.Hour, func() {}) },
		"OnTick":         func() { h.OnTick(func() {}) },
		"OnClose":        func() { h.OnClose(func() {}) },
		"Registered":     func() { h.Registered() },
	} {
		if err := recoverErr(call); !errors.Is(err, hub.ErrNotOwner) {
			t.Errorf("%s off the hub: panic %v, want ErrNotOwner", name, err)
		}
	}
	// From loop work, the same calls are fine.
	err := h.Call(context.Background(), func() {
		if err := h.AddReader(r, noop); err != nil {
			t.Errorf("AddReader on the hub: %v", err)
		}
		h.CallLater(time.Hour, func() {}).Cancel()
		if err := h.Remove(r); err != nil {
			t.Errorf("Remove on the hub: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func recoverErr(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err, _ = r.(error)
		}
	}()
	fn()
	return nil
}

// TestNotOwnerCheapCheck: without CheckOwner, a registration made while
// the driver is blocked in its poll is still refused: the driver cannot be
// the caller.
func TestNotOwnerCheapCheck(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h, err := hub.New(hub.Options{Wait: mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			r, _ := pipe(t)
			runInBackground(t, h)
			hangGuard(t, "waiting for the hub to block", func() {
				for !h.Sleeping() {
					runtime.Gosched()
				}
			})
			if err := h.AddReader(r, func(int, hub.Event) {}); !errors.Is(err, hub.ErrNotOwner) {
				t.Fatalf("AddReader while Run blocks in its poll: %v, want ErrNotOwner", err)
			}
		})
	}
}

// TestCheckOwnerFromEnvironment: KOMBU_HUB_CHECKOWNER=1 turns the check on
// for hubs created without it.
func TestCheckOwnerFromEnvironment(t *testing.T) {
	t.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	h := newHub(t, hub.Options{})
	runInBackground(t, h)
	if err := recoverErr(func() { h.CallSoon(func() {}) }); !errors.Is(err, hub.ErrNotOwner) {
		t.Fatalf("CallSoon off the hub with the variable set: %v, want a panic with ErrNotOwner", err)
	}
}
