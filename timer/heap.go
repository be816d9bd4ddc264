package timer

import "math"

// arity is the number of children per node (the runtime's timerHeapN).
const arity = 4

// slot is one heap element. The ordering key is copied here from the Entry so
// that sifting compares slots without dereferencing entries.
type slot struct {
	when int64  // deadline, nanoseconds since Heap.epoch
	seq  uint64 // schedule order; breaks ties between equal deadlines
	e    *Entry
}

// before reports whether a fires before b.
func (a *slot) before(b *slot) bool {
	return a.when < b.when || (a.when == b.when && a.seq < b.seq)
}

// push appends s and restores the heap order.
func (h *Heap) push(s slot) {
	h.heap = append(h.heap, s)
	h.siftUp(len(h.heap) - 1)
}

// popHead removes the slot at the top. The caller has already read it.
func (h *Heap) popHead() {
	n := len(h.heap) - 1
	h.heap[0] = h.heap[n]
	h.heap[n] = slot{} // drop the pointer so a dead Entry can be collected
	h.heap = h.heap[:n]
	if n > 0 {
		h.siftDown(0)
	}
}

// siftUp moves the slot at i towards the root until its parent is earlier.
func (h *Heap) siftUp(i int) {
	s := h.heap[i]
	for i > 0 {
		p := (i - 1) / arity
		if !s.before(&h.heap[p]) {
			break
		}
		h.heap[i] = h.heap[p]
		i = p
	}
	h.heap[i] = s
}

// siftDown moves the slot at i towards the leaves until no child is earlier.
func (h *Heap) siftDown(i int) {
	n := len(h.heap)
	s := h.heap[i]
	for {
		c := i*arity + 1
		if c >= n {
			break
		}
		// Find the earliest of up to four children.
		m := c
		end := min(c+arity, n)
		for j := c + 1; j < end; j++ {
			if h.heap[j].before(&h.heap[m]) {
				m = j
			}
		}
		if !h.heap[m].before(&s) {
			break
		}
		h.heap[i] = h.heap[m]
		i = m
	}
	h.heap[i] = s
}

// compact removes every cancelled slot and rebuilds the heap bottom-up in
// O(n). The relative order of live entries is unchanged because the key
// (when, seq) is a total order.
func (h *Heap) compact() {
	j := 0
	for _, s := range h.heap {
		if s.e.cancelled {
			s.e.inHeap = false
			continue
		}
		h.heap[j] = s
		j++
	}
	clear(h.heap[j:])
	h.heap = h.heap[:j]
	h.zombies = 0
	// Heapify: sift down every node that has a child, last parent first.
	// (j-2)/arity is the parent of the last slot; with j < 2 there is none.
	if j < 2 {
		return
	}
	for i := (j - 2) / arity; i >= 0; i-- {
		h.siftDown(i)
	}
}

// addSat returns a+b, saturated to the int64 range.
func addSat(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// subSat returns a-b, saturated to the int64 range.
func subSat(a, b int64) int64 {
	d := a - b
	switch {
	case b < 0 && d < a:
		return math.MaxInt64
	case b > 0 && d > a:
		return math.MinInt64
	}
	return d
}
