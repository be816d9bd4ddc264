//go:build unix

package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/hub"
)

// ring is n tokens; token i is signalled by writing to wfd[i] and observed
// by reading rfd[i]. Exactly one token is set at a time.
type ring struct {
	rfd, wfd []int
	next     []int // next[rfd] = write fd of the following token
}

func newRing(n int) (*ring, error) {
	r := &ring{rfd: make([]int, 0, n), wfd: make([]int, 0, n)}
	for i := 0; i < n; i++ {
		rd, wr, err := newToken()
		if err != nil {
			r.close()
			return nil, fmt.Errorf("bench: token %d of %d: %w", i, n, err)
		}
		r.rfd = append(r.rfd, rd)
		r.wfd = append(r.wfd, wr)
	}
	maxfd := 0
	for _, fd := range r.rfd {
		maxfd = max(maxfd, fd)
	}
	r.next = make([]int, maxfd+1)
	for i, fd := range r.rfd {
		r.next[fd] = r.wfd[(i+1)%n]
	}
	return r, nil
}

func (r *ring) close() {
	for i := range r.rfd {
		closeToken(r.rfd[i], r.wfd[i])
	}
}

var tokenByte = []byte{1, 0, 0, 0, 0, 0, 0, 0}

// RunRing passes a token around n descriptors for events dispatches with the
// given implementation and reports the cost per dispatched event.
func RunRing(impl string, n, events int) (RingResult, error) {
	rg, err := newRing(n)
	if err != nil {
		return RingResult{}, err
	}
	defer rg.close()
	var run func() (int, error)
	switch impl {
	case ImplHub:
		run = func() (int, error) { return ringHub(rg, events, hub.WaitDefault) }
	case ImplHub + "-" + hub.WaitBlocking.String():
		run = func() (int, error) { return ringHub(rg, events, hub.WaitBlocking) }
	case ImplHub + "-" + hub.WaitGosched.String():
		run = func() (int, error) { return ringHub(rg, events, hub.WaitGosched) }
	case ImplHub + "-" + hub.WaitNetpoll.String():
		run = func() (int, error) { return ringHub(rg, events, hub.WaitNetpoll) }
	case ImplRawEpoll:
		run = func() (int, error) { return ringRaw(rg, events) }
	case ImplGoroutines:
		run = func() (int, error) { return ringGoroutines(rg, events) }
	default:
		return RingResult{}, fmt.Errorf("bench: unknown ring implementation %q", impl)
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	g, err := run()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&ms1)
	if err != nil {
		return RingResult{}, err
	}
	return RingResult{
		Impl: impl, Fds: n,
		NsPerEvent:     float64(elapsed.Nanoseconds()) / float64(events),
		AllocsPerEvent: float64(ms1.Mallocs-ms0.Mallocs) / float64(events),
		Goroutines:     g,
	}, nil
}

func ringHub(rg *ring, events int, mode hub.WaitMode) (int, error) {
	h, err := hub.New(hub.Options{Wait: mode})
	if err != nil {
		return 0, err
	}
	defer h.Close()
	buf := make([]byte, 8)
	count := 0
	goroutines := 0
	handler := func(fd int, ev hub.Event) {
		unix.Read(fd, buf)
		count++
		if count == events {
			goroutines = runtime.NumGoroutine()
			h.Stop()
			return
		}
		unix.Write(rg.next[fd], tokenByte)
	}
	for _, fd := range rg.rfd {
		if err := h.AddReader(fd, handler); err != nil {
			return 0, err
		}
	}
	unix.Write(rg.wfd[0], tokenByte)
	if err := h.Run(context.Background()); err != nil {
		return 0, err
	}
	for _, fd := range rg.rfd {
		h.Remove(fd)
	}
	return goroutines, nil
}

func ringGoroutines(rg *ring, events int) (int, error) {
	files := make([]*os.File, len(rg.rfd))
	for i, fd := range rg.rfd {
		// A dup, so that closing the *os.File leaves the ring's fd alone.
		d, err := unix.Dup(fd)
		if err != nil {
			for _, f := range files[:i] {
				f.Close()
			}
			return 0, err
		}
		unix.SetNonblock(d, true)
		files[i] = os.NewFile(uintptr(d), "token")
	}
	ready := make(chan int, 64)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 8)
			for {
				if _, err := f.Read(buf); err != nil {
					return
				}
				ready <- rg.rfd[i]
			}
		}()
	}
	var goroutines int
	unix.Write(rg.wfd[0], tokenByte)
	for count := 1; ; count++ {
		fd := <-ready
		if count == events {
			goroutines = runtime.NumGoroutine()
			break
		}
		unix.Write(rg.next[fd], tokenByte)
	}
	for _, f := range files {
		f.Close()
	}
	wg.Wait()
	return goroutines, nil
}

// Wakeup measures iters round trips of each mechanism and returns the
// median of rounds repetitions per mechanism.
func Wakeup(iters, rounds int) ([]WakeResult, error) {
	type mech struct {
		name string
		fn   func(int) (time.Duration, error)
	}
	mechs := []mech{
		{WakeChan, wakeChan},
		{WakeNetpoll, wakeNetpollFd},
	}
	if rawWakeSupported {
		mechs = append(mechs, mech{WakeRaw, wakeRawBlocking})
	}
	for _, m := range HubWaitModes {
		mechs = append(mechs, mech{wakeHubPref + m.String(), func(n int) (time.Duration, error) { return wakeHub(m, n) }})
	}
	samples := make([][]float64, len(mechs))
	for r := 0; r < rounds; r++ {
		for i, m := range mechs { // interleaved, so drift hits all alike
			d, err := m.fn(iters)
			if err != nil {
				return nil, fmt.Errorf("bench: wake-up %s: %w", m.name, err)
			}
			samples[i] = append(samples[i], float64(d.Nanoseconds())/float64(iters))
		}
	}
	out := make([]WakeResult, len(mechs))
	for i, m := range mechs {
		out[i] = WakeResult{Mode: m.name, Ns: Median(samples[i])}
	}
	return out, nil
}

// idle gives the waiter time to block before the next signal, so every
// round trip measures a wake-up from idle rather than a busy hand-off.
func idle() {
	for i := 0; i < 200; i++ {
		runtime.Gosched()
	}
}

func wakeChan(iters int) (time.Duration, error) {
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for range ping {
			pong <- struct{}{}
		}
	}()
	defer close(ping)
	var total time.Duration
	for i := 0; i < iters; i++ {
		idle()
		t := time.Now()
		ping <- struct{}{}
		<-pong
		total += time.Since(t)
	}
	return total, nil
}

func wakeNetpollFd(iters int) (time.Duration, error) {
	rd, wr, err := newToken()
	if err != nil {
		return 0, err
	}
	defer closeToken(rd, wr)
	d, err := unix.Dup(rd)
	if err != nil {
		return 0, err
	}
	unix.SetNonblock(d, true)
	f := os.NewFile(uintptr(d), "wake")
	pong := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 8)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			pong <- struct{}{}
		}
	}()
	var total time.Duration
	for i := 0; i < iters; i++ {
		idle()
		t := time.Now()
		unix.Write(wr, tokenByte)
		<-pong
		total += time.Since(t)
	}
	f.Close()
	wg.Wait()
	return total, nil
}

func wakeHub(mode hub.WaitMode, iters int) (time.Duration, error) {
	h, err := hub.New(hub.Options{Wait: mode})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- h.Run(ctx) }()
	pong := make(chan struct{})
	reply := func() { pong <- struct{}{} }
	var total time.Duration
	for i := 0; i < iters; i++ {
		idle()
		t := time.Now()
		h.Post(reply)
		<-pong
		total += time.Since(t)
	}
	cancel()
	err = <-runErr
	h.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return 0, err
	}
	return total, nil
}
