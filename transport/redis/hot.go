package redis

import "github.com/kombu-go/kombu/internal/resp"

// The hot set: with many consumed queues, pops look at the queues known to
// hold messages, and an EXISTS over the others' keys decides when a pop
// must go over every key (doc.go, "Many queues").

// coldEvery is how often a hot pop is followed by the EXISTS over the cold
// queues' keys: with a busy hot queue, a message in a cold queue waits at
// most coldEvery+1 pops (see doc.go, "Many queues"). A hot pop that
// follows a BRPOP always carries it.
const coldEvery = 4

// manyQueues is the number of consumed queues above which pops look at the
// hot queues only; up to it, every pop goes over every key, as Kombu's
// BRPOP does, which costs little with few keys.
const manyQueues = 16

// maxHot bounds the queues a hot pop looks at: beyond it, queues with
// messages stay cold, their EXISTS count is not zero, and the pops go over
// every key (the behaviour without the hot set).
const maxHot = 8

// setActive records the consumed list queues: lookups, cached keys and the
// hot set follow, and every queue may hold messages until checked.
func (st *store) setActive(lists []string) {
	clear(st.activeSet)
	for _, q := range lists {
		st.activeSet[q] = struct{}{}
	}
	for q := range st.stepKeys {
		if !st.isActive(q) {
			delete(st.stepKeys, q)
		}
	}
	for q := range st.hot {
		if !st.isActive(q) {
			delete(st.hot, q)
		}
	}
	st.coldMaybe = true
	st.coldStale = true
}

// keysOf returns the cached prefixed list keys of a queue, one per step.
func (st *store) keysOf(queue string) []string {
	ks, ok := st.stepKeys[queue]
	if !ok {
		o := st.o
		ks = make([]string, len(o.steps))
		for i, step := range o.steps {
			ks[i] = o.key(o.queueKey(queue, step))
		}
		st.stepKeys[queue] = ks
	}
	return ks
}

// popKeys returns the keys of the queues in order (Kombu's BRPOP order:
// step-major, then queue), only those of hot queues when onlyHot is set,
// and the queue of each key.
func (st *store) popKeys(order []string, onlyHot bool) (keys, qs []string) {
	if onlyHot {
		sel := make([]string, 0, len(st.hot))
		for _, q := range order {
			if _, ok := st.hot[q]; ok {
				sel = append(sel, q)
				if len(sel) == len(st.hot) {
					break
				}
			}
		}
		order = sel
	}
	steps := len(st.o.steps)
	keys = make([]string, 0, len(order)*steps)
	qs = make([]string, 0, cap(keys))
	for i := range steps {
		for _, q := range order {
			keys = append(keys, st.keysOf(q)[i])
			qs = append(qs, q)
		}
	}
	return keys, qs
}

// coldCmd returns the EXISTS command over the keys of the consumed queues
// outside hot, built again only when either set changed; nil when every
// consumed queue is hot.
func (st *store) coldCmd() []byte {
	if !st.coldStale {
		return st.cold
	}
	st.coldStale = false
	n := 0
	for _, q := range st.active {
		if _, ok := st.hot[q]; !ok {
			n += len(st.keysOf(q))
		}
	}
	if n == 0 {
		st.cold = nil
		return nil
	}
	b := resp.AppendArrayHeader(st.cold[:0], n+1)
	b = resp.AppendBulkString(b, "EXISTS")
	for _, q := range st.active {
		if _, ok := st.hot[q]; !ok {
			for _, k := range st.keysOf(q) {
				b = resp.AppendBulkString(b, k)
			}
		}
	}
	st.cold = b
	return b
}

// onExists handles the EXISTS over the cold queues' keys that followed a
// hot pop: a count above zero sends the next pop over every key; none,
// after a short hot pop, means every queue was empty: BRPOP next.
func (st *store) onExists(v resp.Value) {
	st.coldMaybe = v.Int > 0
	if st.hotShort {
		st.hotShort = false
		st.drained = !st.coldMaybe
	}
	st.pump()
}

// updateHot brings the hot set up to date after a pop: queues that gave
// messages join it (up to maxHot), and hot queues whose every key the
// script went past without a message leave it. The script takes keys in
// order and moves on only when one is empty, so a key before the last one
// that gave a message, or any key of a short pop, was found empty.
func (st *store) updateHot(cmd *popCmd, yielded map[string]struct{}, last int, short bool) {
	changed := false
	if nq := len(cmd.queues) / max(len(st.o.steps), 1); nq > 0 {
		// A queue's last key is in the last step's block.
		for j := len(cmd.keys) - nq; j < len(cmd.keys); j++ {
			q := cmd.queues[j]
			if _, ok := yielded[q]; ok || (!short && j >= last) {
				continue
			}
			if _, ok := st.hot[q]; ok {
				delete(st.hot, q)
				changed = true
			}
		}
	}
	for q := range yielded {
		if _, ok := st.hot[q]; !ok && len(st.hot) < maxHot && st.isActive(q) {
			st.hot[q] = struct{}{}
			changed = true
		}
	}
	if changed {
		st.coldStale = true
	}
}
