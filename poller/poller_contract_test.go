//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package poller_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/poller"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newPoller(t *testing.T) *poller.Poller {
	t.Helper()
	p, err := poller.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pipe returns a non-blocking pipe that the runtime's netpoller does not own.
func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatalf("pipe: %v", err)
	}
	for _, fd := range fds {
		unix.SetNonblock(fd, true)
		unix.CloseOnExec(fd)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// find merges the events reported for fd (kqueue reports one per filter).
func find(evs []poller.Ready, fd int) (poller.Event, bool) {
	var ev poller.Event
	found := false
	for _, e := range evs {
		if int(e.Fd) == fd {
			ev |= e.Events
			found = true
		}
	}
	return ev, found
}

func wait(t *testing.T, p *poller.Poller, timeout time.Duration) []poller.Ready {
	t.Helper()
	out := make([]poller.Ready, 16)
	n, err := p.Wait(out, timeout)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return out[:n]
}

func TestContract(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, p *poller.Poller)
	}{
		{"nothing ready polls empty", func(t *testing.T, p *poller.Poller) {
			r, _ := pipe(t)
			if err := p.Add(r, poller.Read); err != nil {
				t.Fatal(err)
			}
			if evs := wait(t, p, 0); len(evs) != 0 {
				t.Fatalf("got %v, want nothing", evs)
			}
			if evs := wait(t, p, 5*time.Millisecond); len(evs) != 0 {
				t.Fatalf("bounded wait got %v, want nothing", evs)
			}
		}},
		{"readable is reported and stays reported (level-triggered)", func(t *testing.T, p *poller.Poller) {
			r, w := pipe(t)
			if err := p.Add(r, poller.Read); err != nil {
				t.Fatal(err)
			}
			unix.Write(w, []byte("x"))
			for i := 0; i < 3; i++ {
				ev, ok := find(wait(t, p, time.Second), r)
				if !ok || ev&poller.Read == 0 {
					t.Fatalf("round %d: fd %d not readable: %v", i, r, ev)
				}
			}
			var buf [8]byte
			unix.Read(r, buf[:])
			if _, ok := find(wait(t, p, 0), r); ok {
				t.Fatal("drained fd still reported")
			}
		}},
		{"writable and modify between directions", func(t *testing.T, p *poller.Poller) {
			r, w := pipe(t)
			if err := p.Add(w, poller.Write); err != nil {
				t.Fatal(err)
			}
			if ev, ok := find(wait(t, p, time.Second), w); !ok || ev&poller.Write == 0 {
				t.Fatalf("write end not writable: %v", ev)
			}
			if err := p.Add(r, poller.Read); err != nil {
				t.Fatal(err)
			}
			if err := p.Modify(w, poller.Read); err != nil {
				t.Fatal(err)
			}
			if ev, ok := find(wait(t, p, 0), w); ok && ev&poller.Write != 0 {
				t.Fatalf("write interest survived Modify: %v", ev)
			}
			if err := p.Modify(r, poller.Read|poller.Write); err != nil {
				t.Fatal(err)
			}
		}},
		{"remove stops events", func(t *testing.T, p *poller.Poller) {
			r, w := pipe(t)
			if err := p.Add(r, poller.Read); err != nil {
				t.Fatal(err)
			}
			unix.Write(w, []byte("x"))
			if err := p.Remove(r); err != nil {
				t.Fatal(err)
			}
			if _, ok := find(wait(t, p, 0), r); ok {
				t.Fatal("removed fd reported")
			}
		}},
		{"registration errors", func(t *testing.T, p *poller.Poller) {
			r, _ := pipe(t)
			if err := p.Remove(r); !errors.Is(err, poller.ErrNotRegistered) {
				t.Fatalf("Remove unknown: %v", err)
			}
			if err := p.Modify(r, poller.Read); !errors.Is(err, poller.ErrNotRegistered) {
				t.Fatalf("Modify unknown: %v", err)
			}
			if err := p.Add(r, 0); !errors.Is(err, poller.ErrNoInterest) {
				t.Fatalf("Add without interest: %v", err)
			}
			if err := p.Add(r, poller.Read); err != nil {
				t.Fatal(err)
			}
			if err := p.Add(r, poller.Read); !errors.Is(err, poller.ErrRegistered) {
				t.Fatalf("Add twice: %v", err)
			}
		}},
		{"hang-up is reported to a reader", func(t *testing.T, p *poller.Poller) {
			r, w := pipe(t)
			if err := p.Add(r, poller.Read); err != nil {
				t.Fatal(err)
			}
			unix.Close(w)
			ev, ok := find(wait(t, p, time.Second), r)
			if !ok || ev&(poller.Read|poller.Error) == 0 {
				t.Fatalf("hang-up not reported: %v", ev)
			}
		}},
		{"wake interrupts a blocking wait and is not reported", func(t *testing.T, p *poller.Poller) {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(10 * time.Millisecond)
				p.Wake()
			}()
			if evs := wait(t, p, -1); len(evs) != 0 {
				t.Fatalf("wake reported as %v", evs)
			}
			wg.Wait()
		}},
		{"wakes coalesce and are drained", func(t *testing.T, p *poller.Poller) {
			for i := 0; i < 100; i++ {
				if err := p.Wake(); err != nil {
					t.Fatal(err)
				}
			}
			wait(t, p, time.Second)
			// The wake-up was drained: nothing is pending any more.
			if evs := wait(t, p, 0); len(evs) != 0 {
				t.Fatalf("got %v after drain", evs)
			}
			// And a later Wake works again.
			p.Wake()
			wait(t, p, -1)
		}},
		{"small output slice", func(t *testing.T, p *poller.Poller) {
			var ws []int
			for i := 0; i < 4; i++ {
				r, w := pipe(t)
				p.Add(r, poller.Read)
				ws = append(ws, w)
			}
			for _, w := range ws {
				unix.Write(w, []byte("x"))
			}
			out := make([]poller.Ready, 2)
			n, err := p.Wait(out, time.Second)
			if err != nil || n < 1 || n > 2 {
				t.Fatalf("Wait into 2 slots: n=%d err=%v", n, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newPoller(t)) })
	}
}

func TestClosed(t *testing.T) {
	p, err := poller.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Wait(make([]poller.Ready, 1), 0); !errors.Is(err, poller.ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
	if err := p.Add(0, poller.Read); !errors.Is(err, poller.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	if err := p.Wake(); !errors.Is(err, poller.ErrClosed) {
		t.Fatalf("Wake after Close: %v", err)
	}
}

// TestWakeRacesClose runs Wake from many goroutines while the poller closes;
// the race detector and the absence of errors other than ErrClosed are the
// checks.
func TestWakeRacesClose(t *testing.T) {
	for round := 0; round < 20; round++ {
		p, err := poller.New()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					if err := p.Wake(); err != nil && !errors.Is(err, poller.ErrClosed) {
						errs <- err
						return
					}
				}
			}()
		}
		wait(t, p, 0)
		p.Close()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Wake: %v", err)
		}
	}
}
