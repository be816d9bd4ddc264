package timer_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/timer"
)

// benchPending is how many timers wait in the queue while a benchmark runs
// (anchors.md measured at 1e5), so sifts work at a realistic depth.
const benchPending = 100_000

// benchOffsets returns a power-of-two table of pseudo-random delays in
// [0, span), so the loops draw delays without calling the generator.
func benchOffsets(span time.Duration) []time.Duration {
	rng := rand.New(rand.NewPCG(7, 11))
	offs := make([]time.Duration, 1<<16)
	for i := range offs {
		offs[i] = time.Duration(rng.Int64N(int64(span)))
	}
	return offs
}

// BenchmarkHeapScheduleCancel schedules one entry among benchPending live
// ones and cancels it: the cost of a timeout that is armed and then not
// needed. Compactions are included, amortised.
func BenchmarkHeapScheduleCancel(b *testing.B) {
	h := timer.New(&manualClock{now: t0})
	offs := benchOffsets(time.Hour)
	fn := func() {}
	for i := range benchPending {
		h.At(t0.Add(offs[i&(len(offs)-1)]), fn)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.At(t0.Add(offs[i&(len(offs)-1)]), fn).Cancel()
	}
	b.StopTimer()
	if h.Len() != benchPending {
		b.Fatalf("Len = %d", h.Len())
	}
}

// BenchmarkHeapScheduleFire keeps benchPending entries queued; each op
// schedules one entry (deadline = a simulated now plus a random delay), pops
// the earliest and runs it.
func BenchmarkHeapScheduleFire(b *testing.B) {
	h := timer.New(&manualClock{now: t0})
	const tick = 10 * time.Nanosecond // simulated time per op
	offs := benchOffsets(benchPending * tick)
	fired := 0
	fn := func() { fired++ }
	for i := range benchPending {
		h.At(t0.Add(offs[i&(len(offs)-1)]), fn)
	}
	end := t0.Add(100 * 365 * 24 * time.Hour) // everything is due
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now := time.Duration(i) * tick
		h.At(t0.Add(now+offs[i&(len(offs)-1)]), fn)
		f, ok := h.PopDue(end)
		if !ok {
			b.Fatal("nothing due")
		}
		f()
	}
	b.StopTimer()
	if fired != b.N {
		b.Fatalf("fired %d, want %d", fired, b.N)
	}
}

// BenchmarkAfterFuncScheduleFire is the runtime's equivalent of
// BenchmarkHeapScheduleFire: time.AfterFunc with a delay under 1µs, each
// callback on its own goroutine, with benchPending far-future timers pending.
// Compare its ns/op with BenchmarkHeapScheduleFire.
func BenchmarkAfterFuncScheduleFire(b *testing.B) {
	offs := benchOffsets(time.Microsecond)
	noop := func() {}
	pending := make([]*time.Timer, benchPending)
	for i := range pending {
		pending[i] = time.AfterFunc(time.Hour+offs[i&(len(offs)-1)], noop)
	}
	defer func() {
		for _, t := range pending {
			t.Stop()
		}
	}()
	var wg sync.WaitGroup
	done := wg.Done
	b.ReportAllocs()
	b.ResetTimer()
	wg.Add(b.N)
	for i := range b.N {
		time.AfterFunc(offs[i&(len(offs)-1)], done)
	}
	wg.Wait()
}
