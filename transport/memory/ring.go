package memory

import "github.com/kombu-go/kombu/transport"

// queue is a FIFO of messages in a ring buffer whose capacity is a power of
// two. Guarded by the broker's mutex.
type queue struct {
	buf  []*transport.Message
	head int // index of the first message
	n    int
}

func (q *queue) len() int { return q.n }

func (q *queue) grow() {
	c := max(2*len(q.buf), 16)
	buf := make([]*transport.Message, c)
	k := copy(buf, q.buf[q.head:])
	copy(buf[k:], q.buf[:q.head])
	q.buf = buf
	q.head = 0
}

func (q *queue) pushBack(m *transport.Message) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = m
	q.n++
}

func (q *queue) pushFront(m *transport.Message) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1) & (len(q.buf) - 1)
	q.buf[q.head] = m
	q.n++
}

func (q *queue) popFront() *transport.Message {
	m := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return m
}

// popInto moves up to len(dst) messages into dst.
func (q *queue) popInto(dst []*transport.Message) int {
	k := min(len(dst), q.n)
	for i := 0; i < k; i++ {
		dst[i] = q.popFront()
	}
	q.shrink()
	return k
}

// shrink releases a large buffer once the queue has drained, so that a
// burst does not pin its memory forever.
func (q *queue) shrink() {
	if q.n == 0 && len(q.buf) > 4096 {
		q.buf, q.head = nil, 0
	}
}

func (q *queue) clear() {
	for q.n > 0 {
		q.popFront()
	}
	q.shrink()
}
