package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/internal/resp"
	"github.com/kombu-go/kombu/transport"
)

// maxBatch bounds the messages one pop takes when the prefetch window is
// unlimited, so that one busy channel leaves the hub to its other work.
const maxBatch = 256

// hubState is the consumer side of a store, owned by the hub goroutine.
// The consume socket's protocol (waits, the consume script, tracking,
// recovery) is in pump.go; the fanout side in fanout.go.
type hubState struct {
	st       *store
	cycle    channel.Cycle
	active   []string            // consumed list queues, first-consume order
	fanoutQs []string            // consumed queues bound to fanout exchanges
	fanoutTo map[string]string   // exchange -> the queue its messages go to
	topics   map[string]struct{} // subscribed patterns (prefixed)
	cons     *hubSock            // the consume socket (BLMOVE or BRPOP, the consume script)
	listen   *hubSock            // the PSUBSCRIBE socket
	// activeSet holds the queues of active, for lookups per delivery.
	activeSet map[string]struct{}
	// stepKeys caches each consumed queue's prefixed list keys, one per
	// priority step; keyQueue maps each of them back to its queue.
	stepKeys map[string][]string
	keyQueue map[string]string
	// dirty are the list keys the next consume script visits: keys that may
	// hold messages (see pump.go).
	dirty map[string]struct{}
	// primary is the key the wait command blocks on (BLMOVE), and its
	// queue; "" when there is none.
	primary, primaryQueue string
	// stopKey is the key the last script left holding messages: the next
	// script's keys end there (dirtyKeys). toArm are the keys whose
	// tracking the next command re-arms (sendArm).
	stopKey string
	toArm   []string
	// lastRotated is the queue last passed to cycle.Rotate since the last
	// Update: rotating it again would change nothing.
	lastRotated string
	// pending are popped messages not delivered yet (deliverPending).
	pending   []*popped
	pendingAt int
	// fanout messages read but not delivered yet: waiting for their unacked
	// record (inflight), or for room in the prefetch window (backlog).
	inflight int
	backlog  []fanoutMsg
	// reserved is what the command in flight on the consume socket may
	// bring: the window slots it holds until its reply.
	reserved int
	// The acknowledgement path (pump.go): ackq are acks and drops for the
	// next consume script; execOut counts settlements handed to the
	// executor whose effect on Redis is not confirmed yet (their records
	// still exist, so they keep their window slots).
	ackq    []string
	execOut int
	// unconfirmed are messages BLMOVE handed over and this channel
	// delivered, whose unacked record the next consume script writes;
	// afterConfirm is what must wait for those records (restores and
	// give-backs of such messages).
	unconfirmed  []*popped
	afterConfirm []func()
	// Recovery after a lost reply (pump.go): seq numbers the consume
	// scripts, confirmed is the last one whose reply arrived, lostScript
	// says a later one's reply was lost, lostWait is the key of a BLMOVE
	// whose reply was lost.
	seq, confirmed uint64
	lostScript     bool
	lostWait       string
	unblocking     bool   // a CLIENT UNBLOCK is on its way for the wait in flight
	waitGen        uint64 // counts the waits sent
	// trickle is set while the wait keeps bringing messages one at a time
	// and the scripts come back short: the wait is then sent right behind
	// each script. deferPump makes deliverPending post its pump (after a
	// wait's message).
	trickle, deferPump bool
	// badKeys are the list keys found holding another type (logged once
	// each, never waited on).
	badKeys map[string]struct{}
	// pendingTopics are the patterns to subscribe once the LISTEN socket
	// is ready.
	pendingTopics map[string]struct{}
	paused        bool // the LISTEN reader is removed while the window is full
	subscribed    int  // subscriptions the server confirmed
	consuming     bool
	closed        bool
	// handing is set while handOver gives a message that has (or will
	// have) an unacked record to the channel: TakenNoAck drops it.
	// handingQueue is the queue it is handed over for.
	handing      bool
	handingQueue string
	// group is the cluster channel this store is part of (nil on a single
	// node): its stores share the prefetch window.
	group *clusterStore
	// idleWaits counts the waits in a row that found nothing; dormant says
	// the store stopped waiting (goDormant, cluster channels only) and its
	// lease is not renewed.
	idleWaits int
	dormant   bool
}

func (hs *hubState) init(st *store) {
	hs.st = st
	hs.cycle, _ = channel.NewCycle(st.o.queueOrder) // validated in parseOptions
	hs.fanoutTo = make(map[string]string)
	hs.topics = make(map[string]struct{})
	hs.activeSet = make(map[string]struct{})
	hs.stepKeys = make(map[string][]string)
	hs.keyQueue = make(map[string]string)
	hs.dirty = make(map[string]struct{})
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
	if k == kindConsume {
		return len(hs.active) > 0 || hs.owesRedis()
	}
	return len(hs.fanoutQs) > 0
}

// room is what the prefetch window admits beyond the fanout messages
// already on their way, the command in flight, the popped messages not
// delivered yet and the settlements whose records still exist.
func (hs *hubState) room() int {
	return hs.st.ch.Room() - hs.inflight - len(hs.backlog) - hs.held() - hs.execOut - hs.othersHeld()
}

// othersHeld is what the other stores of a cluster channel hold of the
// shared window (0 on a single node).
func (hs *hubState) othersHeld() int {
	if hs.group == nil {
		return 0
	}
	return hs.group.othersHeld(hs.st)
}

// held counts the list messages the window must keep slots for: those the
// command in flight may bring and those popped but not delivered yet.
func (hs *hubState) held() int {
	return hs.reserved + len(hs.pending) - hs.pendingAt
}

// releaseReserved frees the slots the commands in flight held (the
// socket dropped) and lets waiting fanout messages use them.
func (st *store) releaseReserved() { st.release(st.reserved) }

// release frees n of the slots the commands in flight held (a reply came).
func (st *store) release(n int) {
	n = min(n, st.reserved)
	if n <= 0 {
		return
	}
	st.reserved -= n
	if st.group != nil {
		st.group.kick() // the slots may be another store's to use
	}
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
// exchange are read with PSUBSCRIBE, the others on the consume socket.
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
	if len(lists) > 0 && st.o.ackEmulation {
		st.c.mp.register(st)
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

// badKey logs, once per key, a consumed queue's key that is not a list
// (the consume script skips it, and the wait never blocks on it).
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
// next command. Should a callback panic (the hub recovers it), the
// messages after it are not lost: the rest is delivered in the next turn.
//
// Messages whose queue is no longer consumed are given back together, in
// one transaction, so that they keep their order in their list.
func (st *store) deliverPending() {
	var back []*popped
	done := false
	defer func() {
		if len(back) > 0 {
			st.giveBack(back)
		}
		switch {
		case st.pendingAt < len(st.pending):
			st.c.h.CallSoon(st.deliverPending)
		case !done:
			st.c.h.CallSoon(st.pump) // a callback panicked after the last one
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
	done = true
	if st.deferPump {
		// A message the wait handed over: the script that records it goes
		// out after the acks its callback made (posted to the hub before
		// this), so that it carries them instead of the executor.
		st.deferPump = false
		st.c.h.Post(st.pump)
		return
	}
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

// handOver gives m to the channel. recorded says m has (or will have, with
// the next consume script) an unacked record under its delivery tag:
// TakenNoAck drops it if a no-ack consumer takes m, before the consumer's
// callback runs.
func (st *store) handOver(queue string, m *transport.Message, recorded bool) {
	st.handing, st.handingQueue = recorded, queue
	st.ch.Deliver(queue, m)
	st.handing = false
}

// TakenNoAck implements channel.NoAckTaker: a no-ack consumer took the
// message handOver is handing over, so its record, if it has one, goes.
func (st *store) TakenNoAck(m *transport.Message) {
	if st.handing {
		st.handing = false
		st.ack(m.DeliveryInfo.DeliveryTag)
	}
}

// giveBack returns popped messages that no consumer will see to the head
// of their list (where they are consumed next, in the order they were
// popped: ps is in pop order) and deletes their records, in one
// transaction. A message whose record the next consume script writes is
// given back once that record exists.
func (st *store) giveBack(ps []*popped) {
	for _, p := range ps {
		if p.unconfirmed {
			st.afterConfirm = append(st.afterConfirm, func() { st.giveBack(ps) })
			return
		}
	}
	c := st.c
	st.execOut += len(ps)
	c.exec.do(func(ctx context.Context) {
		err := c.giveBack(ctx, st.o, ps)
		st.completeExec(len(ps))
		if err != nil {
			for _, p := range ps {
				c.o.log.Error("redis: could not give a popped message back; its unacked record restores it",
					"queue", p.queue, "delivery_tag", p.tag, "err", err)
			}
		}
	})
}

// completeExec counts n settlements the executor finished (executor
// goroutine) and posts one execDone for all those not applied yet: with
// nobody driving the hub (a Get+Ack loop) they add up in one count, not in
// one post each.
func (st *store) completeExec(n int) {
	st.execFinished.Add(int64(n))
	if st.execPosted.CompareAndSwap(false, true) {
		st.c.h.Post(st.applyExecDone)
	}
}

// applyExecDone applies the finished settlements counted so far (hub).
func (st *store) applyExecDone() {
	st.execPosted.Store(false)
	if n := st.execFinished.Swap(0); n > 0 {
		st.execDone(int(n))
	}
}

// execDone runs on the hub when the executor finished n settlements.
func (st *store) execDone(n int) {
	st.execOut -= n
	switch {
	case st.group != nil:
		st.group.kick() // the slots freed may be another store's to use
	case !st.closed:
		st.reopen()
		st.pump()
	}
}

// popped is one message taken from a list: by the consume script, by
// BLMOVE or BRPOP, or recovered after a lost reply.
type popped struct {
	key   string // the prefixed list key it came from
	queue string // the queue of that key
	raw   []byte
	tag   string // the tag of its unacked record, "" if none
	// sum is the SHA-1 of raw in hex, and unconfirmed is set, for a
	// message BLMOVE handed over until the consume script recorded it.
	sum         string
	unconfirmed bool
	sent        bool // a script carried it: its record may exist
	// m is the decoded message, when it was decoded before delivery.
	m *transport.Message
}

// message decodes the envelope; an undecodable one is still a message,
// with Err set and the raw bytes as Body.
func (p *popped) message() *transport.Message {
	if p.m != nil {
		return p.m
	}
	m, err := decodeEnvelope(p.raw)
	if err != nil {
		m = &transport.Message{Body: p.raw, Err: err}
	}
	if p.tag != "" {
		m.DeliveryInfo.DeliveryTag = p.tag
	}
	return m
}

// sha1Of returns the SHA-1 of b in hex (redis.sha1hex in the scripts).
func sha1Of(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
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
	for _, s := range [...]*hubSock{st.cons, st.listen} {
		if s != nil {
			s.close()
		}
	}
}

// Close releases the store: the command in flight is finished, the
// messages BLMOVE handed over get their records and the consumer leaves
// the registry (finish, pump.go), popped messages not delivered go back
// to their lists, the fanout queues declared auto_delete are deleted
// (Kombu) and the sockets are closed. The acks and restores this queues run
// on the executor; WaitClose waits for them.
func (st *store) Close() error {
	if st.closed {
		return nil
	}
	st.active, st.fanoutQs = nil, nil
	clear(st.activeSet)
	st.finish()
	st.closed = true
	if len(st.unconfirmed) > 0 {
		st.o.log.Warn("redis: closing with messages whose unacked record was not confirmed; "+
			"the processing list keeps them for the visibility sweep", "count", len(st.unconfirmed))
		st.unconfirmed, st.afterConfirm = nil, nil
	}
	for _, fn := range st.afterConfirm {
		fn()
	}
	st.afterConfirm = nil
	if back := st.pending[st.pendingAt:]; len(back) > 0 {
		st.giveBack(slices.Clone(back))
	}
	st.pending, st.pendingAt = nil, 0
	if len(st.ackq) > 0 {
		st.c.exec.ack(st.o, st.ackq...)
		st.ackq = nil
	}
	for _, fm := range st.backlog {
		st.c.exec.ack(st.o.forQueue(fm.queue), fm.tag)
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

// finish ends the consume socket's work on close, blocking the hub (the
// close path only): the wait in flight is cut short with CLIENT UNBLOCK,
// the replies in flight are read (a message already handed over is given
// back), a last script writes the records and acks Redis is owed, and the
// consumer leaves the registry.
func (st *store) finish() {
	s := st.cons
	if s == nil || s.state != sockOpen {
		return
	}
	o := st.o
	deadline := time.Now().Add(o.brpopTimeout + o.connTimeout + o.sockTimeout + time.Second)
	if st.waiting() && s.clientID > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		st.c.clientUnblock(ctx, s.addr, s.clientID)
		cancel()
	}
	for range 4 {
		if !st.readReplies(s, deadline) {
			return
		}
		if !st.owesRedis() {
			break
		}
		st.pump()
	}
	// A member of a node socket never registered a lease (it never moves
	// a message into its processing list) but may have written its
	// delivering hash: the same script deletes it.
	if (st.registered || (s.shared && st.seq > 0)) && st.readReplies(s, deadline) && !st.owesRedis() {
		s.send(st.leaveCmd(), expect{kind: rLeave, wait: o.scriptWait()})
		st.readReplies(s, deadline)
	}
}

// readReplies reads and handles the replies in flight on s until none is
// left (true) or the deadline passed or the socket failed (false).
func (st *store) readReplies(s *hubSock, deadline time.Time) bool {
	for s.state == sockOpen && len(s.exp) > 0 {
		wait := time.Until(deadline)
		if wait <= 0 {
			s.fail(errorf("no reply to the command in flight at close"))
			return false
		}
		r := s // the socket with the descriptor: a member's node socket
		if s.node != nil {
			r = s.node
		}
		if r.writer {
			r.flush()
		}
		ok, err := fdWaitReadable(r.fd, wait)
		if err != nil {
			r.fail(err)
			return false
		}
		if ok {
			r.onReadable()
		}
	}
	return s.state == sockOpen
}
