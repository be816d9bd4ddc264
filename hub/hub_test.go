package hub_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/hub"
)

// TestMain turns the owner check on for every hub of these tests (see
// hub.Options.CheckOwner) and checks for leaked goroutines.
func TestMain(m *testing.M) {
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}

var modes = []hub.WaitMode{hub.WaitBlocking, hub.WaitGosched, hub.WaitNetpoll}

func newHub(t *testing.T, opts hub.Options) *hub.Hub {
	t.Helper()
	h, err := hub.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	unix.SetNonblock(fds[1], true)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func TestReaderWriterAndRemoveOneDirection(t *testing.T) {
	h := newHub(t, hub.Options{})
	r, w := pipe(t)
	var reads, writes int
	if err := h.AddReader(r, func(fd int, ev hub.Event) {
		var buf [16]byte
		unix.Read(fd, buf[:])
		reads++
	}); err != nil {
		t.Fatal(err)
	}
	if err := h.AddWriter(w, func(fd int, ev hub.Event) { writes++ }); err != nil {
		t.Fatal(err)
	}
	unix.Write(w, []byte("x"))
	if err := h.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	if reads != 1 || writes != 1 {
		t.Fatalf("reads=%d writes=%d, want 1 and 1", reads, writes)
	}
	// A reader and a writer on the same fd; removing the writer keeps the reader.
	if err := h.AddWriter(r, func(int, hub.Event) { t.Error("writer on read end called") }); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveWriter(r); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveWriter(w); err != nil {
		t.Fatal(err)
	}
	unix.Write(w, []byte("y"))
	if err := h.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	if reads != 2 || writes != 1 {
		t.Fatalf("after RemoveWriter: reads=%d writes=%d, want 2 and 1", reads, writes)
	}
	if err := h.Remove(r); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(r); !errors.Is(err, hub.ErrNotRegistered) {
		t.Fatalf("second Remove: %v", err)
	}
	if h.Registered() != 0 {
		t.Fatalf("Registered = %d", h.Registered())
	}
}

// TestTurnOrder checks Kombu's order within a turn and that a callback
// scheduled during a turn runs in the next one.
func TestTurnOrder(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	h := newHub(t, hub.Options{Clock: clk})
	r, w := pipe(t)
	var log []string
	h.AddReader(r, func(fd int, ev hub.Event) {
		var buf [8]byte
		unix.Read(fd, buf[:])
		log = append(log, "read")
	})
	h.OnTick(func() { log = append(log, "tick") })
	h.CallLater(0, func() { log = append(log, "timer") })
	h.CallSoon(func() {
		log = append(log, "ready")
		h.CallSoon(func() { log = append(log, "ready-next") })
	})
	unix.Write(w, []byte("x"))
	if err := h.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"ready", "tick", "timer", "read"}
	if len(log) != len(want) {
		t.Fatalf("turn 1 = %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("turn 1 = %v, want %v", log, want)
		}
	}
	log = nil
	if err := h.RunOnce(0); err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0] != "ready-next" || log[1] != "tick" {
		t.Fatalf("turn 2 = %v, want [ready-next tick]", log)
	}
}

func TestTimersBoundedPerTurn(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	h := newHub(t, hub.Options{Clock: clk, MaxTimersPerTurn: 10})
	fired := 0
	for i := 0; i < 11; i++ {
		h.CallLater(time.Second, func() { fired++ })
	}
	e := h.CallLater(time.Second, func() { t.Error("cancelled timer fired") })
	e.Cancel()
	h.RunOnce(0)
	if fired != 0 {
		t.Fatalf("fired %d before due", fired)
	}
	clk.now = clk.now.Add(time.Second)
	h.RunOnce(0)
	if fired != 10 {
		t.Fatalf("fired %d in one turn, want 10", fired)
	}
	h.RunOnce(0)
	if fired != 11 {
		t.Fatalf("fired %d after two turns, want 11", fired)
	}
	n := 0
	rep := h.CallRepeatedly(time.Second, func() { n++ })
	for i := 0; i < 3; i++ {
		clk.now = clk.now.Add(time.Second)
		h.RunOnce(0)
	}
	rep.Cancel()
	clk.now = clk.now.Add(time.Second)
	h.RunOnce(0)
	if n != 3 {
		t.Fatalf("repeating timer ran %d times, want 3", n)
	}
}

func TestPostWakesBlockedRun(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHub(t, hub.Options{Wait: mode})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			const producers, each = 4, 500
			var got atomic.Int64
			seen := make([]int, producers) // touched on the hub only
			errs := make(chan string, producers)
			var wg sync.WaitGroup
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						h.Post(func() {
							if seen[p] != i {
								errs <- "posts from one goroutine ran out of order"
							}
							seen[p]++
							if got.Add(1) == producers*each {
								h.Stop()
							}
						})
						if i%50 == 0 {
							time.Sleep(100 * time.Microsecond) // let the hub block in between
						}
					}
				}()
			}
			if err := h.Run(ctx); err != nil {
				t.Fatalf("Run: %v (ran %d posts)", err, got.Load())
			}
			wg.Wait()
			select {
			case msg := <-errs:
				t.Fatal(msg)
			default:
			}
			if got.Load() != producers*each {
				t.Fatalf("ran %d posts, want %d", got.Load(), producers*each)
			}
		})
	}
}

func TestRunEndsWithContextAndStop(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHub(t, hub.Options{Wait: mode})
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(10 * time.Millisecond); cancel() }()
			if err := h.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run after cancel: %v", err)
			}
			go func() { time.Sleep(10 * time.Millisecond); h.Stop() }()
			if err := h.Run(context.Background()); err != nil {
				t.Fatalf("Run after Stop: %v", err)
			}
		})
	}
}

func TestOnlyOneDriver(t *testing.T) {
	h := newHub(t, hub.Options{})
	started := make(chan struct{})
	h.Post(func() { close(started) })
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- h.Run(ctx) }()
	<-started
	if err := h.RunOnce(0); !errors.Is(err, hub.ErrRunning) {
		t.Fatalf("RunOnce during Run: %v", err)
	}
	// Call from another goroutine runs on the running hub.
	ran := false
	if err := h.Call(context.Background(), func() { ran = true }); err != nil || !ran {
		t.Fatalf("Call: ran=%v err=%v", ran, err)
	}
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	// With nobody running the hub, Call drives it itself.
	ran = false
	if err := h.Call(context.Background(), func() { ran = true }); err != nil || !ran {
		t.Fatalf("Call on idle hub: ran=%v err=%v", ran, err)
	}
}

func TestPanicPolicy(t *testing.T) {
	h := newHub(t, hub.Options{})
	h.CallSoon(func() { panic("boom") })
	err := h.RunOnce(0)
	var pe *hub.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
		t.Fatalf("RunOnce = %v, want *PanicError with value boom and a stack", err)
	}

	var reported []error
	h2 := newHub(t, hub.Options{OnError: func(err error) error { reported = append(reported, err); return nil }})
	r, w := pipe(t)
	calls := 0
	h2.AddReader(r, func(fd int, ev hub.Event) {
		calls++
		var buf [8]byte
		unix.Read(fd, buf[:])
		panic(errors.New("reader failed"))
	})
	unix.Write(w, []byte("x"))
	if err := h2.RunOnce(time.Second); err != nil {
		t.Fatalf("with OnError returning nil the loop must go on: %v", err)
	}
	unix.Write(w, []byte("x"))
	if err := h2.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || len(reported) != 2 || !errors.As(reported[0], &pe) {
		t.Fatalf("calls=%d reported=%v", calls, reported)
	}
}

// TestStaleEventDropped: in one batch fd A's callback closes fd B and a new
// fd takes B's number; B's pending event must not reach the new owner.
func TestStaleEventDropped(t *testing.T) {
	h := newHub(t, hub.Options{})
	ra, wa := pipe(t)
	rb, wb := pipe(t)
	unix.Write(wa, []byte("x"))
	unix.Write(wb, []byte("x"))
	newOwnerCalled := false
	oldOwnerCalled := false
	first := func(fd int, ev hub.Event) {
		var buf [8]byte
		unix.Read(fd, buf[:])
		other := rb
		if fd == rb {
			other = ra
			oldOwnerCalled = true // b ran first: nothing to check for a
		}
		if oldOwnerCalled && fd == rb {
			return
		}
		h.Remove(other)
		// A new, never-ready pipe takes the old number.
		nr, nw := pipe(t)
		if err := unix.Dup2(nr, other); err != nil {
			t.Fatal(err)
		}
		_ = nw
		h.AddReader(other, func(int, hub.Event) { newOwnerCalled = true })
	}
	h.AddReader(ra, first)
	h.AddReader(rb, first)
	if err := h.RunOnce(time.Second); err != nil {
		t.Fatal(err)
	}
	if newOwnerCalled {
		t.Fatal("an event of the removed fd reached its new owner")
	}
}

func TestCloseRunsPendingAndIsIdempotent(t *testing.T) {
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	h.CallSoon(func() { order = append(order, "ready") })
	h.Post(func() { order = append(order, "posted") })
	h.OnClose(func() { order = append(order, "onclose") })
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if len(order) != 3 || order[2] != "onclose" {
		t.Fatalf("close order %v", order)
	}
	if err := h.RunOnce(0); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("RunOnce after Close: %v", err)
	}
	if err := h.Call(context.Background(), func() {}); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Call after Close: %v", err)
	}
	h.Post(func() { t.Error("post after close ran") })
	select {
	case <-h.Done():
	default:
		t.Fatal("Done not closed")
	}
}

func TestCloseWaitsForRunningLoop(t *testing.T) {
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	running := make(chan struct{})
	h.Post(func() { close(running) })
	runErr := make(chan error, 1)
	go func() { runErr <- h.Run(context.Background()) }()
	<-running
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run returned %v after Close", err)
	}
}

// TestDispatchAllocs: dispatching a ready fd allocates nothing, in every
// wait mode.
func TestDispatchAllocs(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHub(t, hub.Options{Wait: mode})
			r, w := pipe(t)
			buf := make([]byte, 8)
			one := []byte{1}
			h.AddReader(r, func(fd int, ev hub.Event) {
				unix.Read(fd, buf)
				unix.Write(w, one)
			})
			unix.Write(w, one)
			allocs := testing.AllocsPerRun(1000, func() {
				if err := h.RunOnce(-1); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("%.1f allocations per dispatched event, want 0", allocs)
			}
		})
	}
}

func TestDriveUntilCondition(t *testing.T) {
	h := newHub(t, hub.Options{})
	n := 0
	var tick func()
	tick = func() {
		n++
		if n < 5 {
			h.CallSoon(tick)
		}
	}
	h.CallSoon(tick)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Drive(ctx, func() bool { return n == 5 }); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := h.Drive(short, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drive past deadline: %v", err)
	}
}

// TestCancelWhilePostsRace cancels a running hub right after a stream of
// posted round trips: a wake-up drained by one non-blocking poll must not
// hide the cancellation from the next, blocking one (a regression in the
// gosched mode, where Run never returned).
func TestCancelWhilePostsRace(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			for round := 0; round < 10; round++ {
				h, err := hub.New(hub.Options{Wait: mode})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- h.Run(ctx) }()
				pong := make(chan struct{})
				reply := func() { pong <- struct{}{} }
				for i := 0; i < 2000; i++ {
					if i%3 == 0 {
						for j := 0; j < 50; j++ {
							runtime.Gosched()
						}
					}
					h.Post(reply)
					<-pong
				}
				cancel()
				select {
				case err := <-done:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("Run: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("round %d: Run did not return after cancel (lost wake-up)", round)
				}
				h.Close()
			}
		})
	}
}

// TestCloseEndsDrive: Close from another goroutine ends a Drive in
// progress instead of waiting for its condition.
func TestCloseEndsDrive(t *testing.T) {
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h.Post(func() { close(started) })
	done := make(chan error, 1)
	go func() { done <- h.Drive(context.Background(), func() bool { return false }) }()
	<-started
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, hub.ErrClosed) {
			t.Fatalf("Drive returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drive did not return after Close")
	}
}

// TestDriversWaitForCall: Run, Drive and RunOnce wait for a Call that holds
// the loop instead of failing with ErrRunning (a ConsumerWorker once parked
// for good on that error while a channel closed).
func TestDriversWaitForCall(t *testing.T) {
	h := newHub(t, hub.Options{})
	inCall := make(chan struct{})
	release := make(chan struct{})
	callDone := make(chan error, 1)
	go func() {
		callDone <- h.Call(context.Background(), func() { close(inCall); <-release })
	}()
	<-inCall
	errs := make(chan error, 3)
	go func() { errs <- h.RunOnce(0) }()
	go func() {
		errs <- h.Drive(context.Background(), func() bool { return true })
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errs <- h.Run(ctx) }()
	time.Sleep(20 * time.Millisecond) // they must still be waiting, not failed
	select {
	case err := <-errs:
		t.Fatalf("a driver returned %v while a Call held the hub", err)
	default:
	}
	close(release)
	if err := <-callDone; err != nil {
		t.Fatal(err)
	}
	var results []error
	for len(results) < 2 {
		select {
		case err := <-errs:
			results = append(results, err)
		case <-time.After(5 * time.Second):
			t.Fatal("drivers did not get the hub after the Call")
		}
	}
	cancel()
	results = append(results, <-errs)
	running := 0
	for _, err := range results {
		switch {
		case err == nil, errors.Is(err, context.Canceled):
		case errors.Is(err, hub.ErrRunning):
			running++ // lost the race to Run or Drive, which is allowed
		default:
			t.Fatalf("driver: %v", err)
		}
	}
	if running == 3 {
		t.Fatal("every driver failed with ErrRunning")
	}
}
