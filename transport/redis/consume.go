package redis

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/internal/resp"
	"github.com/kombu-go/kombu/transport"
)

// maxBatch bounds the messages one pop takes when the prefetch window is
// unlimited, so that one busy channel leaves the hub to its other work.
const maxBatch = 256

// hubState is the consumer side of a store, owned by the hub goroutine.
type hubState struct {
	st       *store
	cycle    channel.Cycle
	active   []string            // consumed list queues, first-consume order
	fanoutQs []string            // consumed queues bound to fanout exchanges
	fanoutTo map[string]string   // exchange -> the queue its messages go to
	topics   map[string]struct{} // subscribed patterns (prefixed)
	brpop    *hubSock
	listen   *hubSock
	// drained is set when the last pop got fewer messages than it asked
	// for: the next command blocks in BRPOP instead of popping again.
	drained bool
	// activeSet holds the queues of active, for lookups per delivery.
	activeSet map[string]struct{}
	// stepKeys caches each consumed queue's prefixed list keys, one per
	// priority step (popKeys' order within a queue).
	stepKeys map[string][]string
	// hot are the consumed queues a recent pop or BRPOP found messages in
	// (at most maxHot): while no other queue is known to hold messages,
	// a pop looks at their keys only (see doc.go, "Many queues").
	hot map[string]struct{}
	// coldMaybe says a queue outside hot may hold messages (unknown, or
	// the last EXISTS over their keys counted some): the next pop goes
	// over every key in Kombu's order.
	coldMaybe bool
	// cold is the cached EXISTS command over the keys of the consumed
	// queues outside hot (nil when there are none); coldStale asks for it
	// to be rebuilt.
	cold      []byte
	coldStale bool
	// hotShort is set when a hot pop got fewer messages than it asked
	// for; its EXISTS reply decides between BRPOP and a full pop.
	hotShort bool
	// sinceCold counts the hot pops sent since the last EXISTS over the
	// cold queues' keys (one rides with every coldEvery-th hot pop).
	sinceCold int
	// lastRotated is the queue last passed to cycle.Rotate since the last
	// Update: rotating it again would change nothing.
	lastRotated string
	// carry is a message a BRPOP took whose unacked record has not been
	// confirmed yet; the next pop records and delivers it first.
	carry *popped
	// pending are popped messages not delivered yet (deliverPending).
	pending   []*popped
	pendingAt int
	// fanout messages read but not delivered yet: waiting for their unacked
	// record (inflight), or for room in the prefetch window (backlog).
	inflight int
	backlog  []fanoutMsg
	// reserved is the n of the pop script in flight: the window slots its
	// messages may take, kept from fanout deliveries until its reply.
	reserved int
	// badKeys are the list keys the pop script found holding another
	// type (logged once each).
	badKeys map[string]struct{}
	// pendingTopics are the patterns to subscribe once the LISTEN socket
	// is ready.
	pendingTopics map[string]struct{}
	paused        bool // the LISTEN reader is removed while the window is full
	subscribed    int  // subscriptions the server confirmed
	consuming     bool
	closed        bool
	// handing is set while handOver gives a message that has an unacked
	// record to the channel (TakenNoAck drops the record).
	handing bool
}

// popCmd is one pop (script or BRPOP) sent on the BRPOP socket.
type popCmd struct {
	keys   []string // prefixed list keys in order (the script's KEYS[3:])
	queues []string // the queue of each key
	n      int      // the most messages asked for
	first  *popped  // the message a BRPOP took, recorded by this pop
	record bool
	// hot is set when the pop looked at the hot queues' keys only; exists
	// when an EXISTS over the other queues' keys follows it.
	hot, exists bool
}

func (hs *hubState) init(st *store) {
	hs.st = st
	hs.cycle, _ = channel.NewCycle(st.o.queueOrder) // validated in parseOptions
	hs.fanoutTo = make(map[string]string)
	hs.topics = make(map[string]struct{})
	hs.activeSet = make(map[string]struct{})
	hs.stepKeys = make(map[string][]string)
	hs.hot = make(map[string]struct{})
	hs.coldMaybe = true
}

// isActive reports whether queue is a consumed list queue.
func (hs *hubState) isActive(queue string) bool {
	_, ok := hs.activeSet[queue]
	return ok
}

// needs reports whether a socket of this kind is still wanted.
func (hs *hubState) needs(k sockKind) bool {
	if hs.closed {
		return false
	}
	if k == kindBRPOP {
		return len(hs.active) > 0 || hs.carry != nil
	}
	return len(hs.fanoutQs) > 0
}

// room is what the prefetch window admits beyond the fanout messages
// already on their way and the pop in flight.
func (hs *hubState) room() int {
	return hs.st.ch.Room() - hs.inflight - len(hs.backlog) - hs.held()
}

// held counts the list messages the window must keep slots for: those the
// pop in flight may bring and those popped but not delivered yet.
func (hs *hubState) held() int {
	return hs.reserved + len(hs.pending) - hs.pendingAt
}

// releaseReserved frees the slots the pop in flight held (its reply came,
// or its socket dropped) and lets waiting fanout messages use them.
func (st *store) releaseReserved() {
	if st.reserved == 0 {
		return
	}
	st.reserved = 0
	if len(st.backlog) == 0 && !st.paused {
		return
	}
	st.c.h.CallSoon(func() {
		if !st.closed {
			st.reopen()
		}
	})
}

// reopen moves backlogged fanout messages on and resumes the LISTEN
// reader when the window has room.
func (st *store) reopen() {
	st.deliverBacklog()
	if s := st.listen; st.paused && s != nil && s.state == sockOpen && st.room() > 0 {
		st.paused = false
		if err := s.addReader(); err != nil {
			s.fail(err)
		}
	}
}

// Consuming takes the set of consumed queues: queues bound to a fanout
// exchange are read with PSUBSCRIBE, the others with BRPOP.
func (st *store) Consuming(queues []string) {
	if st.closed {
		return
	}
	var lists, fan []string
	fanoutTo := make(map[string]string)
	topics := make(map[string]struct{})
	for _, q := range queues {
		if b, ok := st.c.t.fanoutOf(q); ok {
			fan = append(fan, q)
			fanoutTo[b.exchange] = q // one queue per exchange per channel (Kombu)
			topics[st.o.key(st.o.fanoutTopic(b.exchange, b.key))] = struct{}{}
			continue
		}
		lists = append(lists, q)
	}
	changed := !slices.Equal(lists, st.active)
	st.active = lists
	st.fanoutQs = fan
	st.fanoutTo = fanoutTo
	st.cycle.Update(lists)
	st.lastRotated = ""
	if changed {
		st.setActive(lists)
	}
	if len(queues) > 0 && !st.consuming {
		st.consuming = true
		if !st.c.mp.restoredOnce && st.o.ackEmulation {
			st.c.mp.restoredOnce = true // Kombu's on_poll_init
			st.c.mp.restoreVisible()
		}
	}
	// A BRPOP in flight waits on the old keys: unblock it so that the next
	// one uses the new set at once.
	if s := st.brpop; changed && s != nil && len(s.exp) > 0 && s.exp[0].kind == rBRPOP && s.clientID > 0 {
		id := s.clientID
		st.c.exec.do(func(ctx context.Context) { st.c.rdb.ClientUnblock(ctx, id) })
	}
	st.subscribe(topics)
	st.pump()
}

// subscribe brings the PSUBSCRIBE set to topics. Kombu subscribes once per
// connection and sends UNSUBSCRIBE on cancel; this subscribes new patterns
// as they come and PUNSUBSCRIBEs the old ones.
func (st *store) subscribe(topics map[string]struct{}) {
	s := st.listen
	if len(topics) > 0 && s == nil {
		s = newHubSock(st, kindLISTEN)
		st.listen = s
	}
	if s == nil {
		return
	}
	if s.state == sockIdle {
		st.topics = make(map[string]struct{})
		if len(topics) > 0 {
			s.connect()
		}
		st.pendingTopics = topics
		return
	}
	if !s.ready {
		st.pendingTopics = topics
		return
	}
	var add, del []string
	for t := range topics {
		if _, ok := st.topics[t]; !ok {
			add = append(add, t)
		}
	}
	for t := range st.topics {
		if _, ok := topics[t]; !ok {
			del = append(del, t)
		}
	}
	st.topics = topics
	if len(add) > 0 {
		s.send(resp.AppendCommand(nil, append([]string{"PSUBSCRIBE"}, add...)...))
	}
	if len(del) > 0 {
		s.send(resp.AppendCommand(nil, append([]string{"PUNSUBSCRIBE"}, del...)...))
	}
}

// Resume is called when the prefetch window reopens.
func (st *store) Resume() {
	if st.closed {
		return
	}
	st.reopen()
	st.pump()
}

// onReady runs when a hub socket finished its handshake.
func (st *store) onReady(s *hubSock) {
	if s.kind == kindLISTEN {
		t := st.pendingTopics
		st.pendingTopics = nil
		if t == nil {
			t = make(map[string]struct{})
			for _, q := range st.fanoutQs {
				if b, ok := st.c.t.fanoutOf(q); ok {
					t[st.o.key(st.o.fanoutTopic(b.exchange, b.key))] = struct{}{}
				}
			}
		}
		st.topics = make(map[string]struct{})
		st.subscribe(t)
		return
	}
	st.pump()
}

// onLost runs when a hub socket dropped its connection.
func (st *store) onLost(s *hubSock) {
	if s.kind == kindLISTEN {
		st.topics = make(map[string]struct{})
		st.paused = false
		st.subscribed = 0
	}
}

// pump sends the next command on the BRPOP socket when nothing is in
// flight, the channel consumes list queues and its window has room: the
// pop script while messages are known to be waiting (it pops up to the
// room and writes their unacked records atomically), else a BRPOP over the
// queues' priority keys in Kombu's order.
func (st *store) pump() {
	if st.closed || (len(st.active) == 0 && st.carry == nil) || st.pendingAt < len(st.pending) {
		return
	}
	s := st.brpop
	if s == nil {
		s = newHubSock(st, kindBRPOP)
		st.brpop = s
	}
	if s.state == sockIdle {
		s.connect()
		return
	}
	if !s.ready || len(s.exp) > 0 {
		return
	}
	room := st.room()
	if room <= 0 {
		return
	}
	n := min(room, maxBatch)
	cmd := &popCmd{n: n, record: st.o.ackEmulation}
	order := st.cycle.Consume(len(st.active))
	o := st.o
	if st.carry == nil && st.drained && len(order) > 0 {
		cmd.keys, cmd.queues = st.popKeys(order, false)
		b := resp.AppendArrayHeader(s.out[len(s.out):], len(cmd.keys)+2)
		b = resp.AppendBulkString(b, "BRPOP")
		for _, k := range cmd.keys {
			b = resp.AppendBulkString(b, k)
		}
		b = resp.AppendBulkString(b, o.brpopTimeoutArg())
		s.send(b, expect{kind: rBRPOP, wait: o.brpopTimeout + o.connTimeout + o.sockTimeout, cmd: cmd})
		return
	}
	cmd.hot = len(st.active) > manyQueues && !st.coldMaybe && (len(st.hot) > 0 || st.carry != nil)
	cmd.keys, cmd.queues = st.popKeys(order, cmd.hot)
	cmd.first, st.carry = st.carry, nil
	args := 3 + 2 + len(cmd.keys) + 3
	if cmd.first != nil {
		args++
	}
	b := resp.AppendArrayHeader(s.out[len(s.out):], args)
	b = resp.AppendBulkString(b, "EVALSHA")
	b = resp.AppendBulkString(b, popSHA)
	b = resp.AppendBulkInt(b, int64(2+len(cmd.keys)))
	b = resp.AppendBulkString(b, o.key(o.unackedKey))
	b = resp.AppendBulkString(b, o.key(o.unackedIndexKey))
	for _, k := range cmd.keys {
		b = resp.AppendBulkString(b, k)
	}
	b = resp.AppendBulkInt(b, int64(n))
	b = resp.AppendBulkString(b, score(time.Now()))
	b = resp.AppendBulkString(b, flag(cmd.record))
	if cmd.first != nil {
		b = resp.AppendBulk(b, cmd.first.raw)
	}
	wait := o.connTimeout + o.sockTimeout + 10*time.Second
	st.reserved = n
	if !cmd.hot {
		s.send(b, expect{kind: rPop, wait: wait, cmd: cmd})
		return
	}
	// The queues outside hot are checked right after the pop, in the same
	// write: when one holds messages, the next pop goes over every key.
	st.sinceCold++
	if cold := st.coldCmd(); cold != nil && (st.sinceCold >= coldEvery || cmd.first != nil) {
		st.sinceCold = 0
		cmd.exists = true
		b = append(b, cold...)
		s.send(b, expect{kind: rPop, wait: wait, cmd: cmd}, expect{kind: rExists, wait: wait, cmd: cmd})
		return
	}
	s.send(b, expect{kind: rPop, wait: wait, cmd: cmd})
}

// brpopTimeoutArg is BRPOP's timeout argument: seconds, "1" by default.
func (o *options) brpopTimeoutArg() string {
	return strconv.FormatFloat(o.brpopTimeout.Seconds(), 'f', -1, 64)
}

// onBRPOP handles a BRPOP reply: null on timeout, else [key, envelope].
// The message is not delivered yet: the pop script records it first (and
// takes what else is ready, up to the window).
func (st *store) onBRPOP(s *hubSock, cmd *popCmd, v resp.Value) {
	if v.IsNull() || len(v.Array()) != 2 {
		st.pump()
		return
	}
	key := v.Array()[0].Str
	i := 0
	for i < len(cmd.keys) && cmd.keys[i] != string(key) {
		i++
	}
	if i == len(cmd.keys) {
		// Not one of our keys: impossible unless the server is confused.
		s.fail(errorf("BRPOP replied with unknown key %q", key))
		return
	}
	p := &popped{key: cmd.keys[i], queue: cmd.queues[i], raw: bytes.Clone(v.Array()[1].Str)}
	st.drained = false
	if !st.isActive(p.queue) {
		st.giveBack([]*popped{p}) // cancelled meanwhile: no record needed
		st.pump()
		return
	}
	// BRPOP found the keys before this one empty, like a pop over every
	// key: the queues outside hot are checked again after the next pop.
	st.coldMaybe = false
	st.updateHot(cmd, map[string]struct{}{p.queue: {}}, i, false)
	st.carry = p
	if !st.o.ackEmulation {
		p := st.carry
		st.carry = nil
		st.deliver(p)
	}
	st.pump()
}

// onPopped handles the pop script's reply: triples of key index,
// envelope and tag, recorded in Redis before this reply was sent.
func (st *store) onPopped(s *hubSock, cmd *popCmd, v resp.Value) {
	st.releaseReserved() // the popped messages are in pending now
	elems := v.Array()
	got, last := 0, -1
	var yielded map[string]struct{}
	for i := 0; i+2 < len(elems); i += 3 {
		idx := int(elems[i].Int)
		p := &popped{raw: bytes.Clone(elems[i+1].Str), tag: string(elems[i+2].Str)}
		switch {
		case idx == 0 && cmd.first != nil:
			p.key, p.queue = cmd.first.key, cmd.first.queue
		case idx >= 3 && idx-3 < len(cmd.keys):
			p.key, p.queue = cmd.keys[idx-3], cmd.queues[idx-3]
			got++
			last = idx - 3
		case idx <= -3 && -idx-3 < len(cmd.keys):
			st.badKey(cmd.queues[-idx-3], cmd.keys[-idx-3], string(elems[i+1].Str))
			continue
		default:
			continue
		}
		if yielded == nil {
			yielded = make(map[string]struct{}, 1)
		}
		yielded[p.queue] = struct{}{}
		st.pending = append(st.pending, p)
	}
	want := cmd.n
	if cmd.first != nil {
		want--
	}
	short := got < want
	st.updateHot(cmd, yielded, last, short)
	switch {
	case cmd.exists:
		st.hotShort = short // the EXISTS reply decides
	case cmd.hot:
		// Unless no queue is outside hot, a short pop tells nothing of them:
		// the next pop goes over every key.
		st.drained = short
		if short && st.coldCmd() != nil {
			st.drained = false
			st.coldMaybe = true
		}
	default:
		st.drained = short
		st.coldMaybe = false // checked after the next (hot) pop
	}
	st.deliverPending()
}

// badKey logs, once per key, a consumed queue's key that is not a list
// (the pop script skips it).
func (st *store) badKey(queue, key, msg string) {
	if _, ok := st.badKeys[key]; ok {
		return
	}
	if st.badKeys == nil {
		st.badKeys = make(map[string]struct{})
	}
	st.badKeys[key] = struct{}{}
	st.o.log.Error("redis: a consumed queue's key is not a list; it is skipped", "queue", queue, "key", key, "err", msg)
}

// deliverPending delivers the popped messages in order, then sends the
// next pop. Should a callback panic (the hub recovers it), the messages
// after it are not lost: the rest is delivered in the next turn.
//
// Messages whose queue is no longer consumed are given back together, in
// one transaction, so that they keep their order in their list.
func (st *store) deliverPending() {
	var back []*popped
	defer func() {
		if len(back) > 0 {
			st.giveBack(back)
		}
		if st.pendingAt < len(st.pending) {
			st.c.h.CallSoon(st.deliverPending)
		}
	}()
	for st.pendingAt < len(st.pending) {
		p := st.pending[st.pendingAt]
		st.pending[st.pendingAt] = nil
		st.pendingAt++
		if st.closed || !st.isActive(p.queue) {
			back = append(back, p)
			continue
		}
		st.deliver(p)
	}
	st.pending, st.pendingAt = st.pending[:0], 0
	st.pump()
}

// deliver hands a popped message to the channel, or back to Redis when its
// queue is no longer consumed.
func (st *store) deliver(p *popped) {
	if st.closed || !st.isActive(p.queue) {
		st.giveBack([]*popped{p})
		return
	}
	m := p.message()
	if p.queue != st.lastRotated {
		st.cycle.Rotate(p.queue)
		st.lastRotated = p.queue
	}
	st.handOver(p.queue, m, p.tag != "")
}

// handOver gives m to the channel. recorded says m has an unacked record
// under its delivery tag: TakenNoAck drops it if a no-ack consumer takes
// m, before the consumer's callback runs.
func (st *store) handOver(queue string, m *transport.Message, recorded bool) {
	st.handing = recorded
	st.ch.Deliver(queue, m)
	st.handing = false
}

// TakenNoAck implements channel.NoAckTaker: a no-ack consumer took the
// message handOver is handing over, so its record, if it has one, goes.
func (st *store) TakenNoAck(m *transport.Message) {
	if st.handing {
		st.handing = false
		st.c.exec.ack(m.DeliveryInfo.DeliveryTag)
	}
}

// giveBack returns popped messages that no consumer will see to the head
// of their list (where they are consumed next, in the order they were
// popped: ps is in pop order) and deletes their records, in one
// transaction.
func (st *store) giveBack(ps []*popped) {
	c := st.c
	c.exec.do(func(ctx context.Context) {
		if err := c.giveBack(ctx, ps); err != nil {
			for _, p := range ps {
				c.o.log.Error("redis: could not give a popped message back; its unacked record restores it",
					"queue", p.queue, "delivery_tag", p.tag, "err", err)
			}
		}
	})
}

// fanoutMsg is a message received on the PSUBSCRIBE socket.
type fanoutMsg struct {
	queue string
	raw   []byte
	tag   string
	ex    string
	rk    string
	m     *transport.Message
}

// closeSockets closes the hub sockets of a store. Hub goroutine.
func (st *store) closeSockets() {
	for _, s := range [...]*hubSock{st.brpop, st.listen} {
		if s != nil {
			s.close()
		}
	}
}

// finishInFlight waits (blocking the hub, on the close path only) for the
// reply of a command in flight on the BRPOP socket, so that a message Redis
// already popped is given back rather than lost (Kombu's close reads the
// outstanding BRPOP too). A BRPOP is cut short with CLIENT UNBLOCK.
func (st *store) finishInFlight() {
	s := st.brpop
	if s == nil || s.state != sockOpen || len(s.exp) == 0 {
		return
	}
	o := st.o
	deadline := time.Now().Add(o.brpopTimeout + o.connTimeout + o.sockTimeout + time.Second)
	if s.exp[0].kind == rBRPOP && s.clientID > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		st.c.rdb.ClientUnblock(ctx, s.clientID)
		cancel()
	}
	for s.state == sockOpen && len(s.exp) > 0 {
		wait := time.Until(deadline)
		if wait <= 0 {
			s.fail(errorf("no reply to the command in flight at close"))
			return
		}
		if s.writer {
			s.flush()
		}
		ok, err := fdWaitReadable(s.fd, wait)
		if err != nil {
			s.fail(err)
			return
		}
		if ok {
			s.onReadable()
		}
	}
}

// Close releases the store: a pop in flight is finished and its messages
// given back, the fanout queues declared auto_delete are deleted (Kombu)
// and the sockets are closed. The acks and restores this queues run on the
// executor; WaitClose waits for them.
func (st *store) Close() error {
	if st.closed {
		return nil
	}
	st.active, st.fanoutQs = nil, nil
	clear(st.activeSet)
	st.finishInFlight()
	st.closed = true
	back := append([]*popped(nil), st.pending[st.pendingAt:]...)
	if st.carry != nil {
		back = append(back, st.carry) // popped after pending, if both exist
		st.carry = nil
	}
	if len(back) > 0 {
		st.giveBack(back)
	}
	st.pending, st.pendingAt = nil, 0
	for _, fm := range st.backlog {
		st.c.exec.ack(fm.tag)
	}
	st.backlog = nil
	st.closeSockets()
	st.c.mp.discard(st)
	st.mu.Lock()
	var autoDelete []string
	for q := range st.autoDelete {
		if _, ok := st.c.t.fanoutOf(q); ok {
			autoDelete = append(autoDelete, q)
		}
	}
	st.mu.Unlock()
	if len(autoDelete) > 0 {
		state := st.ch.State()
		st.c.exec.do(func(ctx context.Context) {
			for _, q := range autoDelete {
				if _, err := st.DeleteQueue(ctx, q, state.QueueBindings(q), false); err != nil {
					st.o.log.Warn("redis: deleting auto-delete fanout queue failed", "queue", q, "err", err)
				}
			}
		})
	}
	return nil
}

// WaitClose waits, on the goroutine of Channel.Close and not on the hub,
// for the executor to finish the work queued so far (acks and restores),
// so that a message given back is in its list when Channel.Close returns;
// at most closeWait, since Redis may be unreachable (the records left
// behind restore the messages after the visibility timeout).
func (st *store) WaitClose() error {
	return st.c.exec.wait(closeWait)
}

// closeWait bounds how long Channel.Close waits for its acks and restores.
const closeWait = 30 * time.Second
