package timer_test

import (
	"slices"
	"testing"
	"time"

	"github.com/kombu-go/kombu/timer"
)

// refEntry is one pending entry of the reference model.
type refEntry struct {
	id     int
	when   time.Duration // deadline since t0
	seq    uint64
	period time.Duration // 0 for one-shot
}

// refModel is the obvious implementation: a slice kept sorted by (when, seq).
type refModel struct {
	now     time.Duration
	seq     uint64
	pending []refEntry
}

func (m *refModel) insert(r refEntry) {
	r.seq = m.seq
	m.seq++
	i, _ := slices.BinarySearchFunc(m.pending, r, func(a, b refEntry) int {
		if a.when != b.when {
			if a.when < b.when {
				return -1
			}
			return 1
		}
		if a.seq < b.seq {
			return -1
		}
		return 1
	})
	m.pending = slices.Insert(m.pending, i, r)
}

func (m *refModel) cancel(id int) {
	m.pending = slices.DeleteFunc(m.pending, func(r refEntry) bool { return r.id == id })
}

// pop returns the id of the first due entry and re-arms or removes it.
func (m *refModel) pop() (int, bool) {
	if len(m.pending) == 0 || m.pending[0].when > m.now {
		return 0, false
	}
	r := m.pending[0]
	m.pending = m.pending[1:]
	if r.period > 0 {
		r.when = m.now + r.period
		m.insert(r)
	}
	return r.id, true
}

// FuzzHeap runs the fuzz input as a program of heap operations, two bytes per
// step (opcode, argument), and compares the heap with refModel after every
// step: the callbacks fired, Len, Next and Until must agree.
func FuzzHeap(f *testing.F) {
	f.Add([]byte{0, 5, 0, 5, 1, 3, 4, 10, 5, 0, 5, 0, 5, 0})
	f.Add([]byte{2, 1, 2, 2, 4, 3, 5, 0, 6, 0, 4, 9, 5, 0, 5, 0, 5, 0})
	f.Add([]byte{0, 200, 0, 100, 0, 50, 3, 0, 3, 1, 3, 2, 5, 0})
	f.Add([]byte{1, 0, 1, 1, 1, 2, 1, 3, 3, 1, 3, 2, 7, 16, 7, 3, 5, 0, 4, 20, 5, 0})
	f.Add([]byte{2, 0, 0, 1, 2, 3, 4, 31, 7, 1, 5, 0, 7, 0, 2, 4, 4, 8, 6, 1})
	// Eight entries, then cancel the earliest: a tombstone left at the top.
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 3, 0, 4, 3, 5, 0, 5, 0})

	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 4096 {
			prog = prog[:4096]
		}
		c := &manualClock{now: t0}
		h := timer.New(c)
		var m refModel
		var entries []*timer.Entry
		var fired []int
		var hook func() // run by every callback after it records itself

		schedule := func(when, period time.Duration, useAfter bool) {
			id := len(entries)
			fn := func() {
				fired = append(fired, id)
				if hook != nil {
					hook()
				}
			}
			var e *timer.Entry
			switch {
			case period > 0:
				e = h.Every(period, fn)
			case useAfter:
				e = h.After(when-m.now, fn)
			default:
				e = h.At(t0.Add(when), fn)
			}
			entries = append(entries, e)
			m.insert(refEntry{id: id, when: when, period: period})
		}
		// popOne pops from both and checks they agree; inside runs in the
		// callback, after the heap handed it out.
		popOne := func(step int, inside func(id int)) {
			fired = fired[:0]
			wantID, wantOK := m.pop()
			fn, ok := h.PopDue(c.Now())
			if ok != wantOK {
				t.Fatalf("step %d: PopDue ok = %v, model %v", step, ok, wantOK)
			}
			if !ok {
				return
			}
			if inside != nil {
				hook = func() { inside(wantID) }
			}
			fn()
			hook = nil
			if len(fired) != 1 || fired[0] != wantID {
				t.Fatalf("step %d: fired %v, model fired [%d]", step, fired, wantID)
			}
		}
		cancel := func(id int) {
			entries[id].Cancel()
			m.cancel(id)
			if !entries[id].Cancelled() {
				t.Fatalf("entry %d: Cancelled false after Cancel", id)
			}
		}

		for step := 0; step+1 < len(prog); step += 2 {
			op, arg := prog[step]%8, prog[step+1]
			ms := time.Millisecond
			switch op {
			case 0: // At an offset from now, in the past too
				schedule(m.now+time.Duration(int8(arg))*ms, 0, false)
			case 1: // small offsets, so equal deadlines are common; At or After
				schedule(m.now+time.Duration(int(arg%8)-2)*ms, 0, arg&8 != 0)
			case 2:
				p := time.Duration(arg%8+1) * ms
				schedule(m.now+p, p, false)
			case 3:
				if len(entries) > 0 {
					cancel(int(arg) % len(entries))
				}
			case 4:
				d := time.Duration(arg%32) * ms
				m.now += d
				c.Advance(d)
			case 5:
				popOne(step, nil)
			case 6: // the callback cancels its own entry
				popOne(step, func(id int) { cancel(id) })
			case 7:
				if arg%16 == 0 {
					h.Clear()
					for _, r := range m.pending {
						if !entries[r.id].Cancelled() {
							t.Fatalf("step %d: entry %d not cancelled by Clear", step, r.id)
						}
					}
					m.pending = m.pending[:0]
					break
				}
				// The callback cancels some entry, maybe one due next.
				popOne(step, func(int) { cancel(int(arg) % len(entries)) })
			}

			if err := h.CheckInvariants(); err != nil {
				t.Fatalf("step %d (op %d): %v", step, op, err)
			}
			if h.Len() != len(m.pending) {
				t.Fatalf("step %d (op %d): Len %d, model %d", step, op, h.Len(), len(m.pending))
			}
			next, ok := h.Next()
			if ok != (len(m.pending) > 0) {
				t.Fatalf("step %d (op %d): Next ok = %v with %d pending", step, op, ok, len(m.pending))
			}
			if ok {
				want := m.pending[0].when
				if got := next.Sub(t0); got != want {
					t.Fatalf("step %d (op %d): Next %v, model %v", step, op, got, want)
				}
				if got, want := h.Until(time.Second), min(max(want-m.now, 0), time.Second); got != want {
					t.Fatalf("step %d (op %d): Until %v, model %v", step, op, got, want)
				}
			}
		}

		// Finally drain everything that is due and compare the tail.
		for {
			wantID, wantOK := m.pop()
			fired = fired[:0]
			fn, ok := h.PopDue(c.Now())
			if ok != wantOK {
				t.Fatalf("drain: PopDue ok = %v, model %v", ok, wantOK)
			}
			if !ok {
				break
			}
			fn()
			if len(fired) != 1 || fired[0] != wantID {
				t.Fatalf("drain: fired %v, model [%d]", fired, wantID)
			}
		}
	})
}
