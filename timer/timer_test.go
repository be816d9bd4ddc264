package timer_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kombu-go/kombu/timer"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// newHeap returns a heap on a manual clock (declared in example_test.go)
// standing at t0.
func newHeap() (*timer.Heap, *manualClock) {
	c := &manualClock{now: t0}
	return timer.New(c), c
}

// drain pops and runs every callback due at now, in order, and reports how
// many ran.
func drain(h *timer.Heap, now time.Time) int {
	n := 0
	for {
		fn, ok := h.PopDue(now)
		if !ok {
			return n
		}
		fn()
		n++
	}
}

func check(t *testing.T, h *timer.Heap) {
	t.Helper()
	if err := h.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// recorder collects the ids of fired callbacks.
type recorder struct{ got []int }

func (r *recorder) fn(id int) func() { return func() { r.got = append(r.got, id) } }

func TestOrdering(t *testing.T) {
	h, c := newHeap()
	var r recorder
	offsets := rand.New(rand.NewPCG(1, 2)).Perm(200)
	for _, off := range offsets {
		h.At(t0.Add(time.Duration(off+1)*time.Millisecond), r.fn(off))
		check(t, h)
	}
	if h.Len() != 200 {
		t.Fatalf("Len = %d, want 200", h.Len())
	}
	// Nothing is due yet.
	if fn, ok := h.PopDue(c.Now()); ok || fn != nil {
		t.Fatal("PopDue returned an entry before any deadline")
	}
	// Halfway: exactly the first 100 fire, in deadline order.
	if n := drain(h, t0.Add(100*time.Millisecond)); n != 100 {
		t.Fatalf("fired %d at +100ms, want 100", n)
	}
	if n := drain(h, t0.Add(time.Hour)); n != 100 {
		t.Fatalf("fired %d at +1h, want 100", n)
	}
	want := make([]int, 200)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(r.got, want) {
		t.Fatalf("fired out of order: %v", r.got)
	}
	if h.Len() != 0 || h.Slots() != 0 {
		t.Fatalf("Len %d Slots %d after draining, want 0 0", h.Len(), h.Slots())
	}
}

func TestDeadlineIsInclusive(t *testing.T) {
	h, c := newHeap()
	fired := false
	h.After(time.Second, func() { fired = true })
	if _, ok := h.PopDue(t0.Add(time.Second - 1)); ok {
		t.Fatal("due 1ns early")
	}
	c.Advance(time.Second)
	fn, ok := h.PopDue(c.Now())
	if !ok {
		t.Fatal("not due at its deadline")
	}
	if fired {
		t.Fatal("PopDue ran the callback itself")
	}
	fn()
	if !fired {
		t.Fatal("returned func is not the callback")
	}
	if _, ok := h.PopDue(c.Now()); ok {
		t.Fatal("one-shot entry returned twice")
	}
}

func TestFIFOTies(t *testing.T) {
	h, c := newHeap()
	var r recorder
	at := t0.Add(5 * time.Second)
	// Mix At and After for the same instant, with an earlier and a later
	// entry around them, so sifting moves the tied ones.
	h.At(at.Add(time.Second), r.fn(100))
	for i := range 20 {
		if i%2 == 0 {
			h.At(at, r.fn(i))
		} else {
			h.After(5*time.Second, r.fn(i))
		}
	}
	h.At(at.Add(-time.Second), r.fn(-1))
	c.Advance(time.Minute)
	drain(h, c.Now())
	want := []int{-1}
	for i := range 20 {
		want = append(want, i)
	}
	want = append(want, 100)
	if !slices.Equal(r.got, want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
}

func TestPastDeadlinesAreDueAtOnce(t *testing.T) {
	h, c := newHeap()
	var r recorder
	h.At(t0.Add(-time.Hour), r.fn(1))
	h.After(0, r.fn(2))
	h.After(-time.Second, r.fn(3))
	h.At(time.Time{}, r.fn(4)) // saturates far before the epoch
	if n := drain(h, c.Now()); n != 4 {
		t.Fatalf("fired %d, want 4", n)
	}
	// Earliest deadline first: the zero time, -1h, -1s, then now.
	if want := []int{4, 1, 3, 2}; !slices.Equal(r.got, want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
	if d := h.Until(time.Second); d != time.Second {
		t.Fatalf("Until on empty heap = %v, want 1s", d)
	}
}

func TestEvery(t *testing.T) {
	h, c := newHeap()
	runs := 0
	e := h.Every(10*time.Second, func() { runs++ })
	if e.Period() != 10*time.Second {
		t.Fatalf("Period = %v", e.Period())
	}
	// First run is after d, not immediate.
	if _, ok := h.PopDue(c.Now()); ok {
		t.Fatal("Every ran immediately")
	}
	if _, ok := h.PopDue(t0.Add(10*time.Second - 1)); ok {
		t.Fatal("Every ran before its period")
	}
	// Popped late, at +13s: the next run is 10s after the pop, at +23s.
	c.Advance(13 * time.Second)
	if n := drain(h, c.Now()); n != 1 || runs != 1 {
		t.Fatalf("fired %d (runs %d) at +13s, want 1", n, runs)
	}
	if !e.When().Equal(t0.Add(23 * time.Second)) {
		t.Fatalf("re-armed for %v, want +23s", e.When().Sub(t0))
	}
	if next, ok := h.Next(); !ok || !next.Equal(t0.Add(23*time.Second)) {
		t.Fatalf("Next = %v %v, want +23s", next.Sub(t0), ok)
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d while repeating, want 1", h.Len())
	}
	// Way behind schedule (5 periods): one run, not a burst of catch-ups.
	c.Advance(time.Minute)
	if n := drain(h, c.Now()); n != 1 {
		t.Fatalf("fired %d after a long stall, want 1", n)
	}
	if !e.When().Equal(c.Now().Add(10 * time.Second)) {
		t.Fatalf("re-armed for %v, want now+10s", e.When().Sub(t0))
	}
	if e.Cancelled() {
		t.Fatal("running entry reports cancelled")
	}
}

func TestEveryReArmQueuesBehindTies(t *testing.T) {
	// An entry re-armed for a deadline that others already hold fires after
	// them (it took a new sequence number when re-armed).
	h, c := newHeap()
	var r recorder
	h.Every(time.Second, r.fn(0))
	c.Advance(time.Second)
	h.At(t0.Add(2*time.Second), r.fn(1)) // scheduled before the re-arm
	drain(h, c.Now())                    // runs 0, re-arms it for +2s
	h.At(t0.Add(2*time.Second), r.fn(2)) // scheduled after the re-arm
	c.Advance(time.Second)
	drain(h, c.Now())
	if want := []int{0, 1, 0, 2}; !slices.Equal(r.got, want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
}

func TestProgrammerErrorsPanic(t *testing.T) {
	h, _ := newHeap()
	cases := map[string]func(){
		"Every(0)":    func() { h.Every(0, func() {}) },
		"Every(-1)":   func() { h.Every(-1, func() {}) },
		"At nil":      func() { h.At(t0, nil) },
		"After nil":   func() { h.After(time.Second, nil) },
		"Every nil":   func() { h.Every(time.Second, nil) },
		"Every(-1ns)": func() { h.Every(-time.Nanosecond, func() {}) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("did not panic")
				}
			}()
			f()
		})
	}
	if h.Len() != 0 || h.Slots() != 0 {
		t.Fatalf("a panicking call left an entry: Len %d Slots %d", h.Len(), h.Slots())
	}
}

func TestCancelBeforeDue(t *testing.T) {
	h, c := newHeap()
	var r recorder
	a := h.After(time.Second, r.fn(1))
	b := h.After(2*time.Second, r.fn(2))
	a.Cancel()
	check(t, h)
	if !a.Cancelled() || b.Cancelled() {
		t.Fatalf("Cancelled: a %v b %v, want true false", a.Cancelled(), b.Cancelled())
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	if next, ok := h.Next(); !ok || !next.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("Next = %v %v, want +2s (cancelled head skipped)", next.Sub(t0), ok)
	}
	c.Advance(time.Hour)
	drain(h, c.Now())
	if want := []int{2}; !slices.Equal(r.got, want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
	a.Cancel() // twice: no effect
	var never *timer.Entry
	never.Cancel() // a timer that was never set
	if h.Len() != 0 {
		t.Fatalf("Len = %d, want 0", h.Len())
	}
	check(t, h)
}

func TestCancelAfterFire(t *testing.T) {
	h, c := newHeap()
	runs := 0
	e := h.After(time.Second, func() { runs++ })
	keep := h.After(time.Hour, func() {})
	c.Advance(time.Second)
	drain(h, c.Now())
	if e.Cancelled() {
		t.Fatal("fired entry reports cancelled")
	}
	e.Cancel()
	e.Cancel()
	check(t, h)
	if !e.Cancelled() {
		t.Fatal("Cancel after fire not recorded")
	}
	// The fired entry is gone, so cancelling it must not count a tombstone.
	if h.Len() != 1 || h.Zombies() != 0 || keep.Cancelled() {
		t.Fatalf("Len %d Zombies %d keep.Cancelled %v, want 1 0 false",
			h.Len(), h.Zombies(), keep.Cancelled())
	}
	if runs != 1 {
		t.Fatalf("runs = %d", runs)
	}
}

func TestCancelInsideOwnCallback(t *testing.T) {
	t.Run("repeating", func(t *testing.T) {
		h, c := newHeap()
		runs := 0
		var e *timer.Entry
		e = h.Every(time.Second, func() {
			runs++
			if runs == 3 {
				e.Cancel()
			}
		})
		for range 10 {
			c.Advance(time.Second)
			drain(h, c.Now())
			check(t, h)
		}
		if runs != 3 {
			t.Fatalf("runs = %d, want 3", runs)
		}
		if h.Len() != 0 {
			t.Fatalf("Len = %d, want 0", h.Len())
		}
		if _, ok := h.Next(); ok {
			t.Fatal("Next reports a deadline after the series stopped")
		}
	})
	t.Run("one-shot", func(t *testing.T) {
		h, c := newHeap()
		var e *timer.Entry
		e = h.After(0, func() { e.Cancel() })
		other := h.After(time.Second, func() {})
		drain(h, c.Now())
		check(t, h)
		if !e.Cancelled() || other.Cancelled() || h.Len() != 1 {
			t.Fatalf("e %v other %v Len %d", e.Cancelled(), other.Cancelled(), h.Len())
		}
	})
}

func TestCancelRepeatingStopsSeries(t *testing.T) {
	h, c := newHeap()
	runs := 0
	e := h.Every(time.Second, func() { runs++ })
	c.Advance(time.Second)
	drain(h, c.Now())
	e.Cancel()
	for range 5 {
		c.Advance(time.Second)
		drain(h, c.Now())
	}
	if runs != 1 {
		t.Fatalf("runs = %d, want 1", runs)
	}
	if h.Len() != 0 || h.Slots() != 0 {
		t.Fatalf("Len %d Slots %d, want 0 0", h.Len(), h.Slots())
	}
}

func TestCallbackMutatesHeap(t *testing.T) {
	// Callbacks run after PopDue returned, so they may cancel entries that
	// are due in the same turn and schedule new ones.
	h, c := newHeap()
	var r recorder
	var victim *timer.Entry
	h.After(time.Second, func() {
		r.got = append(r.got, 1)
		victim.Cancel()
		h.After(0, r.fn(3)) // due now: same turn
		h.After(time.Second, r.fn(4))
	})
	victim = h.After(time.Second, r.fn(2))
	c.Advance(time.Second)
	drain(h, c.Now())
	check(t, h)
	if want := []int{1, 3}; !slices.Equal(r.got, want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
}

func TestLenNextUntil(t *testing.T) {
	h, c := newHeap()
	// Empty.
	if h.Len() != 0 {
		t.Fatalf("Len = %d", h.Len())
	}
	if _, ok := h.Next(); ok {
		t.Fatal("Next ok on empty heap")
	}
	if d := h.Until(2 * time.Second); d != 2*time.Second {
		t.Fatalf("Until(2s) empty = %v", d)
	}
	if d := h.Until(-1); d != -1 {
		t.Fatalf("Until(-1) empty = %v, want -1 (block)", d)
	}
	if d := h.Until(0); d != 0 {
		t.Fatalf("Until(0) empty = %v", d)
	}

	a := h.After(3*time.Second, func() {})
	h.After(5*time.Second, func() {})
	if h.Len() != 2 {
		t.Fatalf("Len = %d, want 2", h.Len())
	}
	for _, tc := range []struct{ limit, want time.Duration }{
		{10 * time.Second, 3 * time.Second},
		{3 * time.Second, 3 * time.Second},
		{time.Second, time.Second},
		{0, 0},
		{-1, 3 * time.Second}, // no bound
	} {
		if d := h.Until(tc.limit); d != tc.want {
			t.Errorf("Until(%v) = %v, want %v", tc.limit, d, tc.want)
		}
	}
	c.Advance(2 * time.Second)
	if d := h.Until(time.Minute); d != time.Second {
		t.Fatalf("Until after 2s = %v, want 1s", d)
	}
	// Overdue: never negative.
	c.Advance(time.Hour)
	if d := h.Until(time.Minute); d != 0 {
		t.Fatalf("Until overdue = %v, want 0", d)
	}
	if d := h.Until(-1); d != 0 {
		t.Fatalf("Until(-1) overdue = %v, want 0", d)
	}
	// Cancelled head: Next, Until and Len move on to the next live entry.
	c.now = t0
	a.Cancel()
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	if next, ok := h.Next(); !ok || !next.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("Next = %v %v, want +5s", next.Sub(t0), ok)
	}
	if d := h.Until(time.Minute); d != 5*time.Second {
		t.Fatalf("Until = %v, want 5s", d)
	}
	check(t, h)
}

func TestTombstoneAtHead(t *testing.T) {
	// With 8 entries, one Cancel stays below the compaction threshold, so the
	// tombstone remains in the heap until it reaches the top.
	h, c := newHeap()
	var r recorder
	es := make([]*timer.Entry, 8)
	for i := range es {
		es[i] = h.After(time.Duration(i+1)*time.Second, r.fn(i))
	}
	es[0].Cancel()
	if h.Zombies() != 1 || h.Slots() != 8 || h.Len() != 7 {
		t.Fatalf("Zombies %d Slots %d Len %d, want 1 8 7", h.Zombies(), h.Slots(), h.Len())
	}
	check(t, h)
	if next, ok := h.Next(); !ok || !next.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("Next = %v %v, want +2s", next.Sub(t0), ok)
	}
	// Next dropped the tombstone from the top.
	if h.Zombies() != 0 || h.Slots() != 7 || h.Len() != 7 {
		t.Fatalf("after Next: Zombies %d Slots %d Len %d, want 0 7 7", h.Zombies(), h.Slots(), h.Len())
	}
	check(t, h)
	// PopDue skips a tombstone on its way, too.
	es[2].Cancel()
	c.Advance(3 * time.Second)
	drain(h, c.Now())
	check(t, h)
	if want := []int{1}; !slices.Equal(r.got, want) {
		t.Fatalf("got %v, want %v", r.got, want)
	}
	if h.Zombies() != 0 || h.Len() != 5 {
		t.Fatalf("Zombies %d Len %d, want 0 5", h.Zombies(), h.Len())
	}
}

func TestCompactionKeepsOrder(t *testing.T) {
	const n = 2000
	h, c := newHeap()
	rng := rand.New(rand.NewPCG(3, 4))
	var r recorder
	entries := make([]*timer.Entry, n)
	when := make([]time.Duration, n)
	for i := range n {
		// Few distinct deadlines, so ties (FIFO by id) are common.
		when[i] = time.Duration(rng.IntN(300)) * time.Millisecond
		entries[i] = h.At(t0.Add(when[i]), r.fn(i))
	}
	var keep []int
	for _, i := range rng.Perm(n) {
		if i%5 == 0 {
			keep = append(keep, i)
			continue
		}
		entries[i].Cancel()
		check(t, h)
		// No pops happen here, so the compaction rule holds after every
		// Cancel.
		if h.Zombies()*4 > h.Slots() {
			t.Fatalf("%d tombstones in %d slots: not compacted", h.Zombies(), h.Slots())
		}
	}
	if h.Len() != len(keep) {
		t.Fatalf("Len = %d, want %d", h.Len(), len(keep))
	}
	if h.Slots() > len(keep)+len(keep)/4+1 {
		t.Fatalf("Slots = %d for %d live entries", h.Slots(), len(keep))
	}
	// Survivors fire by deadline, then by schedule order.
	slices.SortFunc(keep, func(a, b int) int {
		if when[a] != when[b] {
			return int(when[a] - when[b])
		}
		return a - b
	})
	c.Advance(time.Hour)
	drain(h, c.Now())
	if !slices.Equal(r.got, keep) {
		t.Fatalf("order after compaction differs:\n got %v\nwant %v", r.got, keep)
	}
}

func TestCancelEverythingCompactsToEmpty(t *testing.T) {
	h, _ := newHeap()
	es := make([]*timer.Entry, 100)
	for i := range es {
		es[i] = h.After(time.Duration(i)*time.Second, func() {})
	}
	for _, e := range es {
		e.Cancel()
		check(t, h)
	}
	if h.Len() != 0 || h.Slots() != 0 {
		t.Fatalf("Len %d Slots %d, want 0 0", h.Len(), h.Slots())
	}
}

func TestClear(t *testing.T) {
	h, c := newHeap()
	runs := 0
	es := []*timer.Entry{
		h.After(time.Second, func() { runs++ }),
		h.Every(time.Second, func() { runs++ }),
		h.At(t0, func() { runs++ }),
	}
	dead := h.After(time.Second, func() { runs++ })
	dead.Cancel()
	h.Clear()
	check(t, h)
	if h.Len() != 0 || h.Slots() != 0 {
		t.Fatalf("Len %d Slots %d, want 0 0", h.Len(), h.Slots())
	}
	if _, ok := h.Next(); ok {
		t.Fatal("Next ok after Clear")
	}
	for i, e := range es {
		if !e.Cancelled() {
			t.Errorf("entry %d not cancelled by Clear", i)
		}
		e.Cancel() // still harmless
	}
	c.Advance(time.Hour)
	if n := drain(h, c.Now()); n != 0 || runs != 0 {
		t.Fatalf("fired %d after Clear", n)
	}
	check(t, h)
	// Usable afterwards.
	h.After(0, func() { runs++ })
	if n := drain(h, c.Now()); n != 1 || runs != 1 {
		t.Fatalf("fired %d after reuse, want 1", n)
	}
}

func TestClearInsideCallback(t *testing.T) {
	h, c := newHeap()
	runs := 0
	h.Every(time.Second, func() { runs++; h.Clear() })
	h.After(time.Second, func() { runs += 100 }) // due in the same turn
	c.Advance(time.Second)
	drain(h, c.Now())
	c.Advance(time.Hour)
	drain(h, c.Now())
	if runs != 1 {
		t.Fatalf("runs = %d, want 1", runs)
	}
	if h.Len() != 0 {
		t.Fatalf("Len = %d", h.Len())
	}
}

func TestEntriesOfSeparateHeaps(t *testing.T) {
	h1, c := newHeap()
	h2 := timer.New(c)
	e1 := h1.After(time.Second, func() {})
	h2.After(time.Second, func() {})
	e1.Cancel()
	if h1.Len() != 0 || h2.Len() != 1 {
		t.Fatalf("Len h1 %d h2 %d, want 0 1", h1.Len(), h2.Len())
	}
}

func TestSaturation(t *testing.T) {
	h, c := newHeap()
	far := h.After(math.MaxInt64, func() {})
	rep := h.Every(math.MaxInt64, func() {})
	if d := h.Until(time.Hour); d != time.Hour {
		t.Fatalf("Until = %v, want 1h", d)
	}
	if d := h.Until(-1); d != math.MaxInt64 {
		t.Fatalf("Until(-1) = %v, want max duration", d)
	}
	c.Advance(100 * 365 * 24 * time.Hour)
	if _, ok := h.PopDue(c.Now()); ok {
		t.Fatal("far-future entry due after 100 years")
	}
	// A clock moved far back (before the epoch) gives a large, not negative
	// or wrapped, wait.
	c.now = t0.Add(-100 * 365 * 24 * time.Hour)
	if d := h.Until(-1); d != math.MaxInt64 {
		t.Fatalf("Until(-1) with clock far back = %v", d)
	}
	if far.Cancelled() || rep.Cancelled() || h.Len() != 2 {
		t.Fatal("saturated entries lost")
	}
}

func TestRealClock(t *testing.T) {
	h := timer.New(nil)
	fired := false
	h.After(0, func() { fired = true })
	h.After(time.Hour, func() { t.Error("hour timer fired") })
	drain(h, h.Now())
	if !fired {
		t.Fatal("After(0) not due with the real clock")
	}
	next, ok := h.Next()
	if !ok {
		t.Fatal("no next deadline")
	}
	// Generous bounds: only the hour matters, not how fast the test runs.
	if d := time.Until(next); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("Next is %v away, want about 1h", d)
	}
	if d := h.Until(2 * time.Hour); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("Until = %v, want about 1h", d)
	}
}

func TestAccessors(t *testing.T) {
	h, _ := newHeap()
	e := h.At(t0.Add(90*time.Second), func() {})
	if e.Period() != 0 {
		t.Fatalf("one-shot Period = %v", e.Period())
	}
	if !e.When().Equal(t0.Add(90 * time.Second)) {
		t.Fatalf("When = %v", e.When())
	}
	if !h.Now().Equal(t0) {
		t.Fatalf("Now = %v, want the injected clock's", h.Now())
	}
}

func TestAllocs(t *testing.T) {
	h, c := newHeap()
	for i := range 1024 { // grow the slice first
		h.After(time.Duration(i)*time.Hour, func() {})
	}
	fn := func() {}
	// Scheduling allocates only the Entry.
	if n := testing.AllocsPerRun(1000, func() {
		h.After(time.Second, fn).Cancel()
	}); n != 1 {
		t.Errorf("After+Cancel: %v allocs, want 1", n)
	}
	// Re-arming a repeating entry allocates nothing.
	h.Clear()
	h.Every(time.Second, fn)
	if n := testing.AllocsPerRun(1000, func() {
		c.Advance(time.Second)
		f, ok := h.PopDue(c.Now())
		if !ok {
			panic("repeating entry not due")
		}
		f()
	}); n != 0 {
		t.Errorf("PopDue of a repeating entry: %v allocs, want 0", n)
	}
}
