package timer

import "fmt"

// CheckInvariants reports the first broken invariant of h: heap order, slot
// keys matching their entries, entry flags, and the tombstone count.
func (h *Heap) CheckInvariants() error {
	seen := make(map[*Entry]bool, len(h.heap))
	zombies := 0
	for i := range h.heap {
		s := &h.heap[i]
		if s.e == nil {
			return fmt.Errorf("slot %d: nil entry", i)
		}
		if seen[s.e] {
			return fmt.Errorf("slot %d: entry appears twice", i)
		}
		seen[s.e] = true
		if !s.e.inHeap {
			return fmt.Errorf("slot %d: entry not marked inHeap", i)
		}
		if s.e.h != h {
			return fmt.Errorf("slot %d: entry of another heap", i)
		}
		if s.when != s.e.when {
			return fmt.Errorf("slot %d: slot when %d != entry when %d", i, s.when, s.e.when)
		}
		if s.seq >= h.seq {
			return fmt.Errorf("slot %d: seq %d not below counter %d", i, s.seq, h.seq)
		}
		if s.e.cancelled {
			zombies++
			if s.e.fn != nil {
				return fmt.Errorf("slot %d: cancelled entry keeps its func", i)
			}
		} else if s.e.fn == nil {
			return fmt.Errorf("slot %d: live entry without func", i)
		}
		if i > 0 {
			p := (i - 1) / arity
			if s.before(&h.heap[p]) {
				return fmt.Errorf("slot %d (when %d seq %d) before its parent %d (when %d seq %d)",
					i, s.when, s.seq, p, h.heap[p].when, h.heap[p].seq)
			}
		}
	}
	if zombies != h.zombies {
		return fmt.Errorf("zombies: counted %d, recorded %d", zombies, h.zombies)
	}
	return nil
}

// Slots returns the number of slots in the heap, tombstones included.
func (h *Heap) Slots() int { return len(h.heap) }

// Zombies returns the number of cancelled entries still in the heap.
func (h *Heap) Zombies() int { return h.zombies }
