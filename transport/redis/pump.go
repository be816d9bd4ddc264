package redis

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/kombu-go/kombu/internal/resp"
)

// The consume socket's protocol (doc.go, "Consuming"). Hub goroutine only.
//
// With ack emulation, two commands alternate on the socket:
//
//   - the consume script (lua_consume.go), while some list key may hold
//     messages (dirty), acks wait to be sent, or a lost reply must be
//     recovered: it records and pops up to the window's room from the dirty
//     keys in Kombu's order; an EXISTS over the keys it emptied follows
//     (sendArm), which re-arms Redis's invalidation messages for them
//     (CLIENT TRACKING in OPTIN mode, RESP3);
//   - the wait, when nothing is dirty: BLMOVE from the primary key (one
//     queue's base key) into this consumer's processing list, so that the
//     message Redis hands over is in Redis, in a list a live consumer
//     restores, at the moment it leaves the queue. It is delivered at
//     once; the next consume script records it.
//
// A push to any other consumed key sends Redis's "invalidate" push on the
// same socket: the key turns dirty and, while the wait blocks, CLIENT
// UNBLOCK (through the executor) ends it so the script runs. Without
// tracking (Redis older than 6, or refused) every key turns dirty after
// each wait, which then polls them once per brpop_timeout.
//
// Without ack emulation the socket does what Kombu does: BRPOP over every
// key (the message is delivered at once and not recorded), and the script
// pops without records while messages are known to wait.

// popCmd is one command in flight on the consume socket.
type popCmd struct {
	keys   []string // the list keys, in order (the script's KEYS[5..], or the wait's keys)
	queues []string // the queue of each key
	n      int      // the most messages the script takes from the lists
	seq    uint64   // the script's sequence number
	acks   []string // the acks the script carries
	pairs  []*popped
	// waitKey is the key the processing list's messages came from (the
	// script's ARGV[6]).
	waitKey string
	// primary is the key the wait blocked on when the script was sent.
	primary string
}

// setActive records the consumed list queues: lookups and cached keys
// follow, the keys of new queues are dirty (they must be read once to be
// tracked), and a wait that blocks on a key no longer consumed, or while
// new keys must be read, is ended.
func (st *store) setActive(lists []string) {
	clear(st.activeSet)
	for _, q := range lists {
		st.activeSet[q] = struct{}{}
	}
	for q, ks := range st.stepKeys {
		if !st.isActive(q) {
			for _, k := range ks {
				delete(st.keyQueue, k)
				delete(st.dirty, k)
			}
			delete(st.stepKeys, q)
		}
	}
	for _, q := range lists {
		if _, ok := st.stepKeys[q]; !ok {
			for _, k := range st.keysOf(q) {
				st.markDirty(k)
			}
		}
	}
	if st.primary != "" && !st.isActive(st.primaryQueue) && !st.waiting() {
		st.primary, st.primaryQueue = "", ""
	}
	if st.waiting() && (len(st.dirty) > 0 || !st.isActive(st.primaryQueue)) {
		st.unblock()
	}
}

// keysOf returns the cached prefixed list keys of a queue, one per step.
func (st *store) keysOf(queue string) []string {
	ks, ok := st.stepKeys[queue]
	if !ok {
		ks = st.o.stepKeys(queue)
		st.stepKeys[queue] = ks
		for _, k := range ks {
			st.keyQueue[k] = queue
		}
	}
	return ks
}

// markDirty marks a consumed key as possibly holding messages, unless it
// is not a list.
func (st *store) markDirty(k string) {
	if _, bad := st.badKeys[k]; !bad {
		st.dirty[k] = struct{}{}
	}
}

// markAllDirty marks every consumed key (tracking lost, or not in use).
func (st *store) markAllDirty() {
	for _, q := range st.active {
		for _, k := range st.keysOf(q) {
			st.markDirty(k)
		}
	}
}

// dirtyKeys returns the dirty keys in Kombu's BRPOP order (step-major,
// then queue in the cycle's order) and the queue of each, up to the key
// the last script left holding messages (stopKey): the script pops from
// the first key that has messages until it is empty, so it would not
// reach the keys after that one. (With one busy queue among 1000, the keys
// of the others' later priority steps would otherwise ride with every
// pop.)
func (st *store) dirtyKeys() (keys, qs []string) {
	order := st.cycle.Consume(len(st.active))
	for i := range len(st.o.steps) {
		for _, q := range order {
			ks := st.keysOf(q)
			if i >= len(ks) {
				continue
			}
			if _, ok := st.dirty[ks[i]]; ok {
				keys = append(keys, ks[i])
				qs = append(qs, q)
				if ks[i] == st.stopKey {
					return keys, qs
				}
			}
		}
	}
	return keys, qs
}

// waiting reports whether the wait command is in flight (behind a script,
// or blocking).
func (st *store) waiting() bool {
	s := st.cons
	if s == nil {
		return false
	}
	for _, e := range s.exp {
		if e.kind == rWait {
			return true
		}
	}
	return false
}

// blocked reports whether the wait is the oldest command in flight: Redis
// has run everything before it, so it blocks or is about to.
func (st *store) blocked() bool {
	s := st.cons
	return s != nil && len(s.exp) > 0 && s.exp[0].kind == rWait
}

// owesRedis reports whether the consume socket must send a script even
// with no queue consumed: acks to send, records to write, a lost reply to
// recover.
func (hs *hubState) owesRedis() bool {
	return len(hs.ackq) > 0 || len(hs.unconfirmed) > 0 || hs.lostScript || hs.lostWait != ""
}

// pump sends the next command on the consume socket when nothing is in
// flight: the consume script when a key is dirty or Redis is owed
// something, else the wait while the window has room.
func (st *store) pump() {
	if st.closed || (len(st.active) == 0 && !st.owesRedis()) || st.pendingAt < len(st.pending) {
		return
	}
	s := st.cons
	if s == nil {
		s = newHubSock(st, kindConsume)
		st.cons = s
	}
	if s.state == sockIdle {
		s.connect()
		return
	}
	if !s.ready || len(s.exp) > 0 {
		return
	}
	st.sendArm(s)
	room := st.room()
	consuming := len(st.active) > 0
	if st.o.ackEmulation {
		st.choosePrimary(s)
	}
	if st.owesRedis() || (consuming && room > 0 && len(st.dirty) > 0) {
		// After the wait brought a message, the lists are most likely
		// empty again: the wait goes right behind a script that pops only
		// from the key it waits on (one that pops others must re-arm their
		// tracking first), so that the next message is handed over as soon
		// as it comes.
		wait := consuming && !s.shared && st.trickle && room >= 2 && st.primary != "" && !st.othersWantRoom()
		n := 0
		if consuming {
			n = max(0, min(room, maxBatch))
			if wait {
				n = min(room-1, maxBatch)
			}
		}
		cmd := st.sendScript(s, n)
		if wait && (!s.tracking || len(cmd.keys) == 0 || (len(cmd.keys) == 1 && cmd.keys[0] == st.primary)) {
			st.sendWait(s)
		}
		return
	}
	// A member of a node socket never waits (nodesock.go): a blocking
	// command would hold the socket its master's other queues share.
	idle := s.shared || (st.group != nil && st.idleWaits > 0 && s.tracking && st.o.ackEmulation)
	if consuming && room > 0 && !st.othersWantRoom() && !idle {
		st.sendWait(s)
		return
	}
	if st.group != nil && consuming {
		// Not waiting (no room, another store needs it, or the queue is
		// idle): the wait's key must be tracked like the others, or a push
		// to it would go unheard.
		st.goDormant(s)
		if room <= 0 && len(st.dirty) > 0 {
			st.group.unblockIdle(st)
		}
	}
}

// goDormant makes a store of a cluster channel that does not wait (its
// last wait found nothing, or the shared window has no slot for it) hear
// of the next message through Redis's invalidations, like its other keys:
// the wait's key is armed too. Its lease is no longer renewed; the next
// wait registers it again first (sendWait). A channel with many idle
// queues thus costs a health-check PING per queue every
// health_check_interval, not a wait per second.
func (st *store) goDormant(s *hubSock) {
	if st.dormant {
		return
	}
	st.dormant = true
	if st.primary != "" {
		st.toArm = append(st.toArm, st.primary)
		st.sendArm(s)
	}
}

// othersWantRoom reports, for a store of a cluster channel, whether
// another store of the channel has messages to pop and no room: a wait
// would hold a slot of the shared window that one needs. (This store
// still hears of new messages through Redis's invalidations.)
func (st *store) othersWantRoom() bool {
	if st.group == nil {
		return false
	}
	for _, o := range st.group.all {
		if o != st && o.wantsRoom() {
			return true
		}
	}
	return false
}

// wantsRoom reports whether the store has keys that may hold messages and
// nothing in flight, so it would pop if the window had room.
func (st *store) wantsRoom() bool {
	return !st.closed && len(st.active) > 0 && len(st.dirty) > 0 && st.cons != nil && len(st.cons.exp) == 0
}

// sendArm re-arms Redis's tracking of the keys the last script emptied:
// CLIENT CACHING yes (OPTIN mode) and EXISTS over them, so that a push to
// any of them sends an invalidation from now on. A push that came between
// the script and the EXISTS is counted by it (onArm).
func (st *store) sendArm(s *hubSock) {
	keys := st.toArm
	st.toArm = nil
	if len(keys) == 0 || !s.tracking {
		return
	}
	b := resp.AppendCommand(s.out[len(s.out):], "CLIENT", "CACHING", "yes")
	b = resp.AppendArrayHeader(b, len(keys)+1)
	b = resp.AppendBulkString(b, "EXISTS")
	for _, k := range keys {
		b = resp.AppendBulkString(b, k)
	}
	wait := st.o.connTimeout + st.o.sockTimeout
	s.send(b, expect{kind: rOK, wait: wait}, expect{kind: rArm, wait: wait, cmd: &popCmd{keys: keys}})
	if n := s.node; n != nil {
		n.watch(s, keys) // before Redis can run the EXISTS: the reply is read on the hub
	}
}

// onArm handles the EXISTS that re-armed the tracking of keys: when it
// counted messages, one of the keys got a push before it was tracked
// again, so they are all dirty.
func (st *store) onArm(cmd *popCmd, v resp.Value) {
	if v.Int <= 0 {
		return
	}
	for _, k := range cmd.keys {
		if _, ok := st.keyQueue[k]; ok {
			st.markDirty(k)
		}
	}
	if st.blocked() {
		st.unblock()
		return
	}
	st.pump()
}

// choosePrimary picks the key the wait blocks on: the base key of the
// queue last delivered from (or the first consumed), skipping keys that
// are not lists. The key it replaces is dirty, so that the next script
// reads it and Redis tracks it.
func (st *store) choosePrimary(s *hubSock) {
	var key, queue string
	try := func(q string) bool {
		if q == "" || !st.isActive(q) {
			return false
		}
		for _, k := range st.keysOf(q) {
			if _, bad := st.badKeys[k]; !bad {
				key, queue = k, q
				return true
			}
		}
		return false
	}
	if !try(st.lastRotated) && !try(st.primaryQueue) {
		for _, q := range st.cycle.Consume(len(st.active)) {
			if try(q) {
				break
			}
		}
	}
	if key == st.primary {
		return
	}
	if old := st.primary; old != "" && s.tracking {
		if _, ok := st.keyQueue[old]; ok {
			st.markDirty(old)
		}
	}
	st.primary, st.primaryQueue = key, queue
}

// scriptWait bounds how long a consume script may take to answer.
func (o *options) scriptWait() time.Duration { return o.connTimeout + o.sockTimeout + 10*time.Second }

// sendScript sends the consume script: n messages at most from the dirty
// keys, with the queued acks, the records of the unconfirmed messages, and
// the recovery of a lost reply.
func (st *store) sendScript(s *hubSock, n int) *popCmd {
	o := st.o
	st.seq++
	cmd := &popCmd{seq: st.seq, acks: st.ackq, pairs: slices.Clone(st.unconfirmed), waitKey: st.lostWait,
		primary: st.primary}
	st.ackq = nil
	if n > 0 {
		cmd.keys, cmd.queues = st.dirtyKeys()
		if len(cmd.keys) > 0 {
			cmd.n = n
		}
	}
	if cmd.waitKey == "" && len(cmd.pairs) > 0 {
		cmd.waitKey = cmd.pairs[0].key
	}
	recover := ""
	if st.lostScript {
		recover = strconv.FormatUint(st.confirmed, 10)
	}
	// A message the wait handed over and the application acked before any
	// script recorded it needs neither record nor ack: the script only
	// takes it out of the processing list (an empty tag). Once a script
	// carried it, its record may exist, and both go as they are.
	acks, tags := cmd.acks, make([]string, len(cmd.pairs))
	for i, p := range cmd.pairs {
		tags[i] = p.tag
		if !p.sent && slices.Contains(acks, p.tag) {
			tags[i] = ""
			// cmd.acks stays whole: a lost reply sends them again.
			acks = slices.DeleteFunc(slices.Clone(acks), func(t string) bool { return t == p.tag })
		}
		p.sent = true
	}
	nargs := 3 + 4 + len(cmd.keys) + 9 + len(acks) + 2*len(cmd.pairs)
	b := resp.AppendArrayHeader(s.out[len(s.out):], nargs)
	b = resp.AppendBulkString(b, "EVALSHA")
	b = resp.AppendBulkString(b, consumeSHA)
	b = resp.AppendBulkInt(b, int64(4+len(cmd.keys)))
	b = resp.AppendBulkString(b, o.key(o.unackedKey))
	b = resp.AppendBulkString(b, o.key(o.unackedIndexKey))
	b = resp.AppendBulkString(b, st.pKey)
	b = resp.AppendBulkString(b, st.dKey)
	for _, k := range cmd.keys {
		b = resp.AppendBulkString(b, k)
	}
	b = resp.AppendBulkInt(b, int64(cmd.n))
	b = resp.AppendBulkString(b, score(time.Now()))
	b = resp.AppendBulkString(b, flag(o.ackEmulation))
	b = resp.AppendBulkInt(b, int64(cmd.seq))
	b = resp.AppendBulkString(b, recover)
	b = resp.AppendBulkString(b, cmd.waitKey)
	b = resp.AppendBulkInt(b, int64(len(acks)))
	b = resp.AppendBulkInt(b, int64(len(cmd.pairs)))
	b = resp.AppendBulkString(b, st.deliveringTTL(s))
	for _, t := range acks {
		b = resp.AppendBulkString(b, t)
	}
	for i, p := range cmd.pairs {
		b = resp.AppendBulkString(b, p.sum)
		b = resp.AppendBulkString(b, tags[i])
	}
	st.reserved += cmd.n
	s.send(b, expect{kind: rScript, wait: o.scriptWait(), cmd: cmd})
	return cmd
}

// deliveringTTL is the consume script's ARGV[9]: a member of a node socket
// registers no lease, so no sweep would delete its delivering hash after
// it died; the hash expires instead, once its records are old enough for
// the visibility sweep anyway. "" (no expiry) with a lease.
func (st *store) deliveringTTL(s *hubSock) string {
	if !s.shared {
		return ""
	}
	return strconv.FormatInt((st.o.visibility + st.o.leaseTTL()).Milliseconds(), 10)
}

// sendWait sends the wait: BLMOVE (BRPOPLPUSH before Redis 6.2) from the
// primary key into the processing list, or, without ack emulation,
// Kombu's BRPOP over every key.
func (st *store) sendWait(s *hubSock) {
	o := st.o
	if st.dormant && o.ackEmulation && st.primary != "" {
		// The lease may have expired while the store did not wait: it is
		// registered again before the wait can move a message into the
		// processing list (the same socket runs them in order). Sent
		// before the wait's bytes are appended after s.out's end.
		st.dormant = false
		s.send(st.registerCmd(), expect{kind: rRegister, wait: o.connTimeout + o.sockTimeout})
	}
	cmd := &popCmd{}
	b := s.out[len(s.out):]
	switch {
	case !o.ackEmulation:
		cmd.keys, cmd.queues = st.allKeys()
		if len(cmd.keys) == 0 {
			return
		}
		b = resp.AppendArrayHeader(b, len(cmd.keys)+2)
		b = resp.AppendBulkString(b, "BRPOP")
		for _, k := range cmd.keys {
			b = resp.AppendBulkString(b, k)
		}
		b = resp.AppendBulkString(b, o.brpopTimeoutArg())
	case st.primary == "":
		return // every key is skipped; invalidations still wake the socket
	case s.blmove:
		cmd.keys, cmd.queues = []string{st.primary}, []string{st.primaryQueue}
		b = resp.AppendCommand(b, "BLMOVE", st.primary, st.pKey, "RIGHT", "LEFT", o.brpopTimeoutArg())
	default:
		cmd.keys, cmd.queues = []string{st.primary}, []string{st.primaryQueue}
		b = resp.AppendCommand(b, "BRPOPLPUSH", st.primary, st.pKey, o.brpopTimeoutArg())
	}
	st.reserved++
	st.unblocking = false
	st.waitGen++
	s.send(b, expect{kind: rWait, wait: o.brpopTimeout + o.connTimeout + o.sockTimeout + o.scriptWait(), cmd: cmd})
}

// allKeys returns every consumed key in Kombu's BRPOP order.
func (st *store) allKeys() (keys, qs []string) {
	order := st.cycle.Consume(len(st.active))
	for i := range len(st.o.steps) {
		for _, q := range order {
			if ks := st.keysOf(q); i < len(ks) {
				keys = append(keys, ks[i])
				qs = append(qs, q)
			}
		}
	}
	return keys, qs
}

// brpopTimeoutArg is the wait's timeout argument: seconds, "1" by default.
func (o *options) brpopTimeoutArg() string {
	return strconv.FormatFloat(o.brpopTimeout.Seconds(), 'f', -1, 64)
}

// onWait handles the wait's reply: null on timeout (or CLIENT UNBLOCK),
// else the message (BLMOVE) or [key, message] (BRPOP).
func (st *store) onWait(s *hubSock, cmd *popCmd, v resp.Value) {
	st.release(1)
	st.unblocking = false
	if v.Kind == resp.Error {
		if bytes.HasPrefix(v.Str, []byte("WRONGTYPE")) && len(cmd.keys) == 1 {
			st.badKey(cmd.queues[0], cmd.keys[0], string(v.Str))
			delete(st.dirty, cmd.keys[0])
			st.primary, st.primaryQueue = "", ""
			st.pump()
			return
		}
		s.fail(errorf("%s: %s", "wait", v.Str))
		return
	}
	if !s.tracking && st.o.ackEmulation {
		st.markAllDirty() // polled once per wait
	}
	if v.IsNull() {
		st.idleWaits++
		st.pump()
		return
	}
	st.idleWaits = 0
	var p *popped
	if !st.o.ackEmulation {
		a := v.Array()
		if len(a) != 2 {
			s.fail(errorf("BRPOP replied %s", v.String()))
			return
		}
		i := slices.Index(cmd.keys, string(a[0].Str))
		if i < 0 {
			s.fail(errorf("BRPOP replied with unknown key %q", a[0].Str))
			return
		}
		p = &popped{key: cmd.keys[i], queue: cmd.queues[i], raw: bytes.Clone(a[1].Str)}
		st.markAllDirty() // more may wait: the next script pops them
	} else {
		p = &popped{key: cmd.keys[0], queue: cmd.queues[0], raw: bytes.Clone(v.Str), unconfirmed: true}
		p.sum = sha1Of(p.raw)
		m := p.message()
		p.tag = m.DeliveryInfo.DeliveryTag
		if p.tag == "" || m.Err != nil {
			p.tag = p.sum // as the scripts record a message that is not Kombu's
			m.DeliveryInfo.DeliveryTag = p.tag
		}
		p.m = m
		st.unconfirmed = append(st.unconfirmed, p)
		st.markDirty(p.key) // more may wait behind it
		st.trickle = true
		st.deferPump = true
	}
	st.pending = append(st.pending, p)
	st.deliverPending()
}

// onScript handles the consume script's reply {last, rem, out, recovered}
// (lua_consume.go): the messages are recorded in Redis already.
func (st *store) onScript(s *hubSock, cmd *popCmd, v resp.Value) {
	st.release(cmd.n)
	a := v.Array()
	if v.Kind == resp.Error || len(a) != 4 {
		s.fail(errorf("consume script replied %s", v.String()))
		return
	}
	st.confirmed, st.lostScript = cmd.seq, false
	if cmd.waitKey == st.lostWait {
		st.lostWait = ""
	}
	st.confirm(cmd.pairs)
	st.trickle = st.trickle && len(a[2].Array()) < 3*cmd.n // a full batch: a backlog
	rec := a[3].Array()
	for i := 0; i+2 < len(rec); i += 3 {
		key := string(rec[i].Str)
		env, ok := recordEnvelope(rec[i+1].Str)
		q, known := st.keyQueue[key]
		if !ok || !known {
			st.o.log.Warn("redis: a recovered message is left to the visibility sweep",
				"key", key, "delivery_tag", string(rec[i+2].Str))
			continue
		}
		st.pending = append(st.pending, &popped{key: key, queue: q, raw: env, tag: string(rec[i+2].Str)})
	}
	out := a[2].Array()
	if len(out) > 0 {
		st.idleWaits = 0
	}
	for i := 0; i+2 < len(out); i += 3 {
		idx := int(out[i].Int)
		p := &popped{raw: bytes.Clone(out[i+1].Str), tag: string(out[i+2].Str)}
		switch {
		case idx == 0:
			q, ok := st.keyQueue[cmd.waitKey]
			if !ok {
				st.o.log.Warn("redis: a message of a processing list whose queue is unknown is left to the visibility sweep",
					"key", cmd.waitKey, "delivery_tag", p.tag)
				continue
			}
			p.key, p.queue = cmd.waitKey, q
		case idx >= 5 && idx-5 < len(cmd.keys):
			p.key, p.queue = cmd.keys[idx-5], cmd.queues[idx-5]
		case idx <= -5 && -idx-5 < len(cmd.keys):
			st.badKey(cmd.queues[-idx-5], cmd.keys[-idx-5], string(out[i+1].Str))
			delete(st.dirty, cmd.keys[-idx-5])
			continue
		default:
			continue
		}
		st.pending = append(st.pending, p)
	}
	// Every key before the last one visited was left empty, and the last
	// one too unless the script stopped there with N reached (it stays
	// dirty, and the next script's keys end there). The keys left empty
	// lost their tracking (the script popped them, or an invalidation
	// named them): sendArm re-arms them, the wait's key aside on a single
	// node. A store of a cluster channel re-arms its wait's key too: the
	// stores share the window, so it may get no slot to wait with, and
	// must still hear of a push (TestClusterIdleWindowWakes).
	if last := int(a[0].Int); last > 0 && last <= len(cmd.keys) {
		st.stopKey = ""
		for i, k := range cmd.keys[:last] {
			if i == last-1 && a[1].Int != 0 {
				st.stopKey = k
				break
			}
			delete(st.dirty, k)
			if _, bad := st.badKeys[k]; !bad && (k != cmd.primary || st.group != nil) && st.cons == s && s.tracking {
				st.toArm = append(st.toArm, k)
			}
		}
	}
	if st.waiting() {
		st.ackViaExecutor() // the wait behind this script would hold them
		if len(st.dirty) > 0 {
			st.unblock()
		}
	}
	st.deliverPending()
}

// onInvalidate handles Redis's "invalidate" push: the keys named (every
// key when null) may have changed.
func (st *store) onInvalidate(v resp.Value) {
	a := v.Array()
	if len(a) < 2 || string(a[0].Str) != "invalidate" {
		return
	}
	if a[1].IsNull() {
		st.invalidated(nil, true)
		return
	}
	keys := make([]string, 0, len(a[1].Array()))
	for _, k := range a[1].Array() {
		keys = append(keys, string(k.Str))
	}
	st.invalidated(keys, false)
}

// invalidated marks the keys Redis invalidated (every key when all) dirty,
// and ends a wait in flight so that the script reads them.
func (st *store) invalidated(keys []string, all bool) {
	waiting := st.waiting()
	if all {
		st.markAllDirty()
	}
	for _, key := range keys {
		if _, ok := st.keyQueue[key]; !ok || (waiting && key == st.primary) {
			continue
		}
		st.markDirty(key)
	}
	if len(st.dirty) == 0 {
		return
	}
	if st.blocked() {
		st.unblock()
		return
	}
	st.pump() // a script in flight: its reply pumps (or unblocks the wait behind it)
}

// unblock ends the blocking wait with CLIENT UNBLOCK, sent through the
// executor (a blocked connection reads no command of its own). When the
// wait was not blocking yet (Redis had not read it), it is tried again.
func (st *store) unblock() {
	s := st.cons
	if s == nil || !st.blocked() || st.unblocking || s.clientID <= 0 {
		return
	}
	st.unblocking = true
	id, c, gen, addr := s.clientID, st.c, st.waitGen, s.addr
	c.exec.do(func(ctx context.Context) {
		n, err := c.clientUnblock(ctx, addr, id)
		if err != nil || n > 0 {
			return
		}
		c.h.Post(func() {
			if st.unblocking && st.waitGen == gen && st.cons == s && s.clientID == id {
				st.unblocking = false
				st.unblock()
			}
		})
	})
}

// onConsumeLost runs when the consume socket dropped: what was in flight
// is remembered for the recovery script, the acks it carried are sent
// again, and every key is dirty (Redis forgot the tracking).
func (st *store) onConsumeLost(exp []expect) {
	for _, e := range exp {
		switch {
		case e.cmd == nil:
		case e.kind == rScript:
			st.lostScript = true
			st.ackq = append(e.cmd.acks, st.ackq...)
			if e.cmd.waitKey != "" && st.lostWait == "" && len(e.cmd.pairs) == 0 {
				st.lostWait = e.cmd.waitKey
			}
		case e.kind == rWait && st.o.ackEmulation && len(e.cmd.keys) == 1:
			st.lostWait = e.cmd.keys[0]
		}
	}
	st.unblocking = false
	st.toArm = nil
	st.markAllDirty()
}

// recordEnvelope returns the envelope of an unacked record [envelope,
// exchange, routing_key]; a string first element holds the bytes of a
// message that was not JSON.
func recordEnvelope(raw []byte) ([]byte, bool) {
	rec, ok := parseRecord(raw)
	if !ok {
		return nil, false
	}
	return rec.env, true
}
