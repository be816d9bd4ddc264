package amqp

import "slices"

// maxSettled bounds the out-of-order settlements a settler remembers. A
// message held unsettled for long makes every later settlement
// out-of-order; past the bound the settler stops batching for that channel.
const maxSettled = 1 << 16

// settler decides how to acknowledge a batch of delivery tags of one AMQP
// channel with as few frames as possible, and drops double settlements
// (which RabbitMQ punishes by closing the channel with 406).
//
// A basic.ack with multiple=true settles every unacknowledged delivery up to
// its tag, including deliveries this process has not seen yet. So the
// settler sends one only when every tag from the first unsettled one up to
// the batch's top is either in the batch or already settled: base is the
// highest tag such that every tag at or below it is settled, and done holds
// the settled tags above base. Tags settled by the broker alone (no-ack
// deliveries, basic.recover) would stall base forever, so those switch the
// channel to one ack per tag (noMulti).
type settler struct {
	base    uint64
	done    map[uint64]struct{}
	noMulti bool
	// Once batching is off, recent holds the most recently settled tags (at
	// most maxSettled, the oldest evicted first, in ring order), so that a
	// double settlement is still recognised and dropped.
	recent map[uint64]struct{}
	ring   []uint64
	next   int
}

// settled reports whether tag was settled already.
func (s *settler) settled(tag uint64) bool {
	if tag <= s.base {
		return true
	}
	if s.noMulti {
		_, ok := s.recent[tag]
		return ok
	}
	_, ok := s.done[tag]
	return ok
}

// remember records a settled tag once batching is off.
func (s *settler) remember(tag uint64) {
	if s.recent == nil {
		s.recent = make(map[uint64]struct{})
	}
	if len(s.ring) < maxSettled {
		s.ring = append(s.ring, tag)
	} else {
		delete(s.recent, s.ring[s.next])
		s.ring[s.next] = tag
		s.next = (s.next + 1) % maxSettled
	}
	s.recent[tag] = struct{}{}
}

// mark records tag as settled (individually) and advances base.
func (s *settler) mark(tag uint64) {
	if s.noMulti {
		s.remember(tag)
		return
	}
	if s.done == nil {
		s.done = make(map[uint64]struct{})
	}
	s.done[tag] = struct{}{}
	s.advance()
	if len(s.done) > maxSettled {
		s.disableMulti()
	}
}

func (s *settler) advance() {
	for {
		if _, ok := s.done[s.base+1]; !ok {
			return
		}
		delete(s.done, s.base+1)
		s.base++
	}
}

// disableMulti switches to one ack per tag for good. Tags settled so far
// stay recognised: those at or below base, and the others in recent.
func (s *settler) disableMulti() {
	if s.noMulti {
		return
	}
	s.noMulti = true
	for t := range s.done {
		s.remember(t)
	}
	s.done = nil
}

// reject records a rejected tag. It returns false for a tag settled before,
// which must not be sent again.
func (s *settler) reject(tag uint64) bool {
	if s.settled(tag) {
		return false
	}
	s.mark(tag)
	return true
}

// plan takes the tags to acknowledge (any order, duplicates allowed) and
// returns the acks to send: when upTo > 0, one basic.ack(upTo,
// multiple=true), then one basic.ack per tag in singles. Tags settled
// before are dropped; dups counts them.
func (s *settler) plan(tags []uint64) (upTo uint64, singles []uint64, dups int) {
	slices.Sort(tags)
	tags = slices.Compact(tags)
	fresh := tags[:0]
	for _, t := range tags {
		if s.settled(t) {
			dups++
			continue
		}
		fresh = append(fresh, t)
	}
	tags = fresh
	if s.noMulti {
		for _, t := range tags {
			s.remember(t)
		}
		return 0, tags, dups
	}
	// Walk up from base through the batch and the earlier settlements.
	i := 0
	cur := s.base
	for {
		next := cur + 1
		if i < len(tags) && tags[i] == next {
			i++
			cur = next
			continue
		}
		if _, ok := s.done[next]; ok {
			delete(s.done, next)
			cur = next
			continue
		}
		break
	}
	s.base = cur
	switch i {
	case 0:
	case 1:
		singles = append(singles, tags[0])
	default:
		upTo = tags[i-1]
	}
	for _, t := range tags[i:] {
		singles = append(singles, t)
		s.mark(t)
	}
	return upTo, singles, dups
}
