package channel

import (
	"math"

	"github.com/kombu-go/kombu/transport"
)

// delivery is one unacknowledged message and the tag it was delivered
// under (kept apart from the message, which its consumer may modify).
type delivery struct {
	tag string
	m   *transport.Message
}

// Unlimited is what [Channel.Room] reports when no prefetch limit is set.
const Unlimited = math.MaxInt32

// qos is Kombu's virtual QoS: the prefetch window and the map of
// unacknowledged deliveries, kept in delivery order so that they can be
// restored most recent first. Owned by the hub goroutine.
//
// The deliveries sit in a slice addressed by a sequence number (slot =
// seq - base) with a map from tag to sequence number. Settling a delivery
// leaves a nil in its slot; leading nils are dropped as the oldest
// deliveries are settled, which is the common case (acks come back roughly
// in order), and the slice is compacted when holes pile up in the middle.
type qos struct {
	prefetch int
	index    map[string]uint64
	order    []delivery
	base     uint64 // sequence number of order[0]
	live     int
}

func (q *qos) init() { q.index = make(map[string]uint64) }

// room is the number of deliveries the window still admits.
func (q *qos) room() int {
	if q.prefetch == 0 {
		return Unlimited
	}
	return max(q.prefetch-q.live, 0)
}

// append records an unacknowledged delivery. A tag delivered again (a
// restored message redelivered before its first delivery was settled)
// replaces the older record, as Kombu's dict assignment does.
func (q *qos) append(tag string, m *transport.Message) {
	if seq, ok := q.index[tag]; ok {
		q.order[seq-q.base] = delivery{}
		q.live--
	}
	q.index[tag] = q.base + uint64(len(q.order))
	q.order = append(q.order, delivery{tag, m})
	q.live++
}

// take removes a delivery and returns it (nil if the tag is unknown).
func (q *qos) take(tag string) *transport.Message {
	seq, ok := q.index[tag]
	if !ok {
		return nil
	}
	delete(q.index, tag)
	i := seq - q.base
	m := q.order[i].m
	q.order[i] = delivery{}
	q.live--
	q.trim()
	return m
}

// trim drops settled slots at the front and compacts the slice when most
// of it is holes.
func (q *qos) trim() {
	n := 0
	for n < len(q.order) && q.order[n].m == nil {
		n++
	}
	if n == len(q.order) {
		q.base += uint64(n)
		q.order = q.order[:0]
		return
	}
	if n > 0 && n >= len(q.order)/2 {
		q.base += uint64(n)
		k := copy(q.order, q.order[n:])
		clear(q.order[k:])
		q.order = q.order[:k]
	}
	if len(q.order) > 64 && len(q.order) > 4*q.live {
		q.compact()
	}
}

// compact squeezes out every hole and renumbers the live deliveries.
func (q *qos) compact() {
	k := 0
	for _, d := range q.order {
		if d.m != nil {
			q.order[k] = d
			q.index[d.tag] = q.base + uint64(k)
			k++
		}
	}
	clear(q.order[k:])
	q.order = q.order[:k]
}

// drain removes every delivery and calls fn on each, most recent first
// (Kombu's restore_unacked pops LIFO).
func (q *qos) drain(fn func(tag string, m *transport.Message)) {
	order := q.order
	q.order = nil
	q.base += uint64(len(order))
	clear(q.index)
	q.live = 0
	for i := len(order) - 1; i >= 0; i-- {
		if d := order[i]; d.m != nil {
			fn(d.tag, d.m)
		}
	}
}
