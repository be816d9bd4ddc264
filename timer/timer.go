package timer

import "time"

// Clock is the time source of a [Heap]. Tests inject a fake; the hub passes
// its own so that the heap and the loop agree on "now".
type Clock interface {
	// Now returns the current time. With the real clock it carries a
	// monotonic reading, which the heap uses for all arithmetic.
	Now() time.Time
}

// realClock is the clock used when New is given nil.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Heap is a timer queue: a 4-ary min-heap of [Entry] values ordered by
// deadline, then by the order they were scheduled.
//
// Not safe for concurrent use; owned by the hub. The zero value is not
// usable; call [New].
type Heap struct {
	clock   Clock
	epoch   time.Time // clock reading at New; deadlines are offsets from it
	heap    []slot
	seq     uint64 // next sequence number
	zombies int    // cancelled entries still in heap
}

// Entry is one scheduled callback, returned by [Heap.At], [Heap.After] and
// [Heap.Every]. Keep it to cancel the callback; the zero value is not useful.
//
// Must be used on the goroutine that owns its heap.
type Entry struct {
	h         *Heap
	fn        func() // nil once the entry can never run again
	when      int64  // current deadline, nanoseconds since h.epoch
	period    int64  // repeat interval in nanoseconds; 0 for a one-shot entry
	inHeap    bool   // a slot in h.heap points here (live or tombstone)
	cancelled bool
}

// New returns an empty heap that reads time from c. A nil c means the real
// clock ([time.Now], whose monotonic reading is used).
func New(c Clock) *Heap {
	if c == nil {
		c = realClock{}
	}
	return &Heap{clock: c, epoch: c.Now()}
}

// Now returns the heap clock's current time.
func (h *Heap) Now() time.Time { return h.clock.Now() }

// key converts t to nanoseconds since the epoch, saturating at the int64
// range (time.Time.Sub saturates).
func (h *Heap) key(t time.Time) int64 { return int64(t.Sub(h.epoch)) }

// time converts a key back to a time.Time.
func (h *Heap) time(k int64) time.Time { return h.epoch.Add(time.Duration(k)) }

// At schedules fn to run once at t. A t that is not after the current time
// makes the entry due at once (on the next [Heap.PopDue]).
//
// It panics if fn is nil (a programmer error).
func (h *Heap) At(t time.Time, fn func()) *Entry {
	return h.schedule(h.key(t), 0, fn)
}

// After schedules fn to run once, d after the current time. A d that is not
// positive makes the entry due at once.
//
// It panics if fn is nil (a programmer error).
func (h *Heap) After(d time.Duration, fn func()) *Entry {
	return h.schedule(addSat(h.key(h.Now()), int64(d)), 0, fn)
}

// Every schedules fn to run every d. As in Kombu's call_repeatedly, the first
// run is d after the current time, not immediate. Each later deadline is d
// after the [Heap.PopDue] call that returned the previous run, so a late or
// slow callback shifts the series instead of causing a burst of catch-up
// runs. The same Entry is reused for every run; [Entry.Cancel] stops the
// series, also from inside fn.
//
// It panics if d <= 0 or fn is nil (programmer errors; a zero period would
// make the entry due again in the very turn that ran it).
func (h *Heap) Every(d time.Duration, fn func()) *Entry {
	if d <= 0 {
		panic("timer: non-positive period for Every")
	}
	return h.schedule(addSat(h.key(h.Now()), int64(d)), int64(d), fn)
}

// schedule creates an entry due at when and pushes it.
func (h *Heap) schedule(when, period int64, fn func()) *Entry {
	if fn == nil {
		panic("timer: nil func")
	}
	e := &Entry{h: h, fn: fn, when: when, period: period, inHeap: true}
	h.push(slot{when: when, seq: h.nextSeq(), e: e})
	return e
}

func (h *Heap) nextSeq() uint64 {
	s := h.seq
	h.seq++
	return s
}

// Cancel stops the entry: its callback will not be returned by PopDue again.
// It is cheap (the entry is only marked; see the package doc) and safe to call
// more than once, on an entry that has already fired, on a nil *Entry (a
// timer never set), and from inside the entry's own callback, where it stops
// a repeating entry from running again.
//
// Must be called on the goroutine that owns the heap.
func (e *Entry) Cancel() {
	if e == nil || e.cancelled {
		return
	}
	e.cancelled = true
	e.fn = nil // release the closure now; a tombstone may wait for compaction
	if !e.inHeap {
		return
	}
	h := e.h
	h.zombies++
	// Same rule as the runtime: rebuild once tombstones exceed a quarter of
	// the heap. After a rebuild at size n it takes n/4 more cancels to trigger
	// the next one, so the O(n) rebuild costs O(1) per Cancel amortised.
	if h.zombies > len(h.heap)/4 {
		h.compact()
	}
}

// Cancelled reports whether [Entry.Cancel] (or [Heap.Clear]) has been called
// on the entry. A one-shot entry that has fired is not cancelled.
func (e *Entry) Cancelled() bool { return e.cancelled }

// Period returns the repeat interval of an entry made by [Heap.Every], and 0
// for a one-shot entry.
func (e *Entry) Period() time.Duration { return time.Duration(e.period) }

// When returns the entry's current deadline: for a repeating entry, the next
// run. After a one-shot entry has fired it still returns the time it was due.
func (e *Entry) When() time.Time { return e.h.time(e.when) }

// Len returns the number of live entries: scheduled and not cancelled. A
// repeating entry counts once until it is cancelled.
func (h *Heap) Len() int { return len(h.heap) - h.zombies }

// Next returns the earliest deadline of a live entry, with ok == false when
// there is none. It discards cancelled entries found at the top of the heap.
func (h *Heap) Next() (t time.Time, ok bool) {
	k, ok := h.nextKey()
	if !ok {
		return time.Time{}, false
	}
	return h.time(k), true
}

// nextKey drops tombstones from the top and returns the earliest live key.
func (h *Heap) nextKey() (int64, bool) {
	for len(h.heap) > 0 {
		top := &h.heap[0]
		if !top.e.cancelled {
			return top.when, true
		}
		top.e.inHeap = false
		h.zombies--
		h.popHead()
	}
	return 0, false
}

// Until returns how long the owner may wait before the next live entry is
// due: the time from Now to [Heap.Next], clamped to [0, limit]. With no live
// entry it returns limit. This is the hub's poll timeout: a negative limit
// means "no bound" and is returned unchanged when the heap is empty (block),
// while a non-empty heap then yields an unclamped, non-negative wait.
func (h *Heap) Until(limit time.Duration) time.Duration {
	k, ok := h.nextKey()
	if !ok {
		return limit
	}
	d := time.Duration(max(0, subSat(k, h.key(h.Now()))))
	if limit >= 0 && d > limit {
		d = limit
	}
	return d
}

// PopDue removes and returns the callback of the earliest live entry whose
// deadline is at or before now, dropping cancelled entries on the way. It
// returns ok == false when nothing is due.
//
// A repeating entry is re-armed for now + its period before PopDue returns,
// so the heap is consistent when the caller runs fn, and fn may schedule or
// cancel entries, its own included. A one-shot entry is removed. The caller
// runs fn; the heap never does.
func (h *Heap) PopDue(now time.Time) (fn func(), ok bool) {
	k, ok := h.nextKey()
	if !ok {
		return nil, false
	}
	nk := h.key(now)
	if k > nk {
		return nil, false
	}
	top := &h.heap[0]
	e := top.e
	fn = e.fn
	if e.period > 0 {
		// Re-arm in place: new deadline and a fresh sequence number, so the
		// entry queues behind others already due at the same time.
		e.when = addSat(nk, e.period)
		top.when = e.when
		top.seq = h.nextSeq()
		h.siftDown(0)
	} else {
		e.inHeap = false
		e.fn = nil
		h.popHead()
	}
	return fn, true
}

// Clear cancels every scheduled entry and empties the heap, keeping its
// capacity. [Entry.Cancelled] reports true for the entries it removed.
func (h *Heap) Clear() {
	for i := range h.heap {
		e := h.heap[i].e
		e.inHeap = false
		e.cancelled = true
		e.fn = nil
	}
	clear(h.heap)
	h.heap = h.heap[:0]
	h.zombies = 0
}
