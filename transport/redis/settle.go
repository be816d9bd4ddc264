package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// Settle applies a batch of acknowledgements and restores (Kombu's Redis
// QoS) and returns at once, so the hub never waits for Redis. Acks (ZREM
// unacked_index and HDEL unacked) ride with the next consume script when
// one will be sent soon, else go through the executor, coalesced into one
// pipeline (see store.ack); either way the window slot of an acked message
// is free only once its record is gone. A requeue or restore is Kombu's
// restore_by_tag, one atomic script (sweep.go) run by the executor.
func (st *store) Settle(batch []channel.Settlement) error {
	var acks []string
	for i := range batch {
		s := &batch[i]
		switch s.Op {
		case channel.OpAck, channel.OpDrop:
			acks = append(acks, s.Tag)
		case channel.OpRequeue, channel.OpRestore:
			leftmost := s.Op == channel.OpRequeue
			tag := s.Tag
			var m *transport.Message
			if s.Message != nil {
				mm := *s.Message // the batch is only valid during the call
				m = &mm
			}
			c := st.c
			st.settleRestore(tag, func(ctx context.Context) {
				var err error
				if c.o.ackEmulation {
					err = st.restoreByTag(ctx, tag, leftmost, m)
				} else if m != nil {
					err = st.restoreMessage(ctx, m, leftmost)
				}
				if err != nil {
					c.o.log.Error("redis: restoring a message failed", "delivery_tag", tag, "err", err)
				}
			})
		}
	}
	st.ack(acks...)
	st.pump()
	return nil
}

// restoreMessage puts a delivered message back without ack emulation
// (Kombu's virtual _restore): re-encoded, marked redelivered, to the queue
// it came from.
func (st *store) restoreMessage(ctx context.Context, m *transport.Message, leftmost bool) error {
	if m.DeliveryInfo.Queue == "" {
		return errors.New("redis: cannot restore a message without its queue")
	}
	mm := *m
	mm.DeliveryInfo.Redelivered = true
	env, err := encodeEnvelope(&mm, st.o.bodyEncoding)
	if err != nil {
		return err
	}
	key := st.o.key(st.o.queueKey(m.DeliveryInfo.Queue, m.Properties.Priority))
	if leftmost {
		return st.c.rdb.LPush(ctx, key, env).Err()
	}
	return st.c.rdb.RPush(ctx, key, env).Err()
}

// record writes the unacked records of fanout messages (Kombu's
// QoS.append: ZADD unacked_index, HSET unacked) in one pipeline.
func (c *Conn) record(ctx context.Context, msgs []fanoutMsg) error {
	now := float64(scoreSeconds(time.Now()))
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, fm := range msgs {
			o := c.o.forQueue(fm.queue)
			p.ZAdd(ctx, o.key(o.unackedIndexKey), goredis.Z{Score: now, Member: fm.tag})
			p.HSet(ctx, o.key(o.unackedKey), fm.tag, recordValue(fm.raw, fm.ex, fm.rk))
		}
		return nil
	})
	return err
}

// recordValue is the unacked hash value [envelope, exchange, routing_key]
// in Python's formatting. An envelope that is not JSON is stored as a JSON
// string (as the pop script does), so the record stays JSON.
func recordValue(raw []byte, ex, rk string) []byte {
	b := make([]byte, 0, len(raw)+len(ex)+len(rk)+16)
	b = append(b, '[')
	if json.Valid(raw) {
		b = append(b, raw...)
	} else {
		b = appendJSONString(b, string(raw))
	}
	b = append(b, ", "...)
	b = appendJSONString(b, ex)
	b = append(b, ", "...)
	b = appendJSONString(b, rk)
	return append(b, ']')
}

func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
}

// giveBack puts popped, undelivered messages (ps, in pop order) back at the
// head of their lists and deletes their records, atomically: one RPUSH per
// key, in reverse pop order, so that the first popped is consumed first
// again.
func (c *Conn) giveBack(ctx context.Context, o *options, ps []*popped) error {
	var keys []string
	byKey := make(map[string][]any)
	var tags []string
	for _, p := range ps {
		if _, ok := byKey[p.key]; !ok {
			keys = append(keys, p.key)
		}
		byKey[p.key] = append(byKey[p.key], p.raw)
		if p.tag != "" {
			tags = append(tags, p.tag)
		}
	}
	_, err := c.rdb.TxPipelined(ctx, func(pl goredis.Pipeliner) error {
		for _, k := range keys {
			vals := byKey[k]
			slices.Reverse(vals)
			pl.RPush(ctx, k, vals...)
		}
		if len(tags) > 0 {
			members := make([]any, len(tags))
			fields := make([]string, len(tags))
			for i, tag := range tags {
				members[i], fields[i] = tag, tag
			}
			pl.ZRem(ctx, o.key(o.unackedIndexKey), members...)
			pl.HDel(ctx, o.key(o.unackedKey), fields...)
		}
		return nil
	})
	return err
}

func randomHex() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// executor runs the consumer side's go-redis commands on a goroutine of its
// own, so the hub never blocks on Redis: acknowledgements (coalesced into one
// pipeline), restores, unacked records of fanout messages (the visibility
// sweep has a goroutine of its own, the sweeper: sweep.go). One per
// connection; Conn.Close stops and joins it after it ran everything queued.
type executor struct {
	c *Conn
	// mu guards jobs and stopping: the hub (and any goroutine) queues work,
	// the executor goroutine takes it.
	mu       sync.Mutex
	jobs     []job
	stopping bool
	wake     chan struct{} // capacity 1: a pending wake-up
	done     chan struct{} // closed when run returns
	// retry holds acks whose pipeline failed; retried on the next round
	// (executor goroutine only).
	retry []ackGroup
}

// ackGroup is acknowledged tags whose records live under one options'
// keys (the connection's, or in a cluster one queue's: forQueue).
type ackGroup struct {
	o    *options
	tags []string
}

// addAcks appends tags to the group of o.
func addAcks(gs []ackGroup, o *options, tags []string) []ackGroup {
	for i := range gs {
		if gs[i].o == o {
			gs[i].tags = append(gs[i].tags, tags...)
			return gs
		}
	}
	return append(gs, ackGroup{o: o, tags: append([]string(nil), tags...)})
}

// countAcks is the number of tags in gs.
func countAcks(gs []ackGroup) int {
	n := 0
	for _, g := range gs {
		n += len(g.tags)
	}
	return n
}

// job is either a batch of acks (whose records are under o's keys) or a
// function. done are called (on the executor goroutine) once the acks'
// pipeline ran.
type job struct {
	o    *options
	acks []string
	done []func()
	fn   func(ctx context.Context)
}

func newExecutor(c *Conn) *executor {
	return &executor{c: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (e *executor) push(j job, merge bool) {
	e.mu.Lock()
	if merge && len(e.jobs) > 0 && e.jobs[len(e.jobs)-1].fn == nil && e.jobs[len(e.jobs)-1].o == j.o {
		last := &e.jobs[len(e.jobs)-1]
		last.acks = append(last.acks, j.acks...)
		last.done = append(last.done, j.done...)
	} else {
		e.jobs = append(e.jobs, j)
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// ack queues acknowledgements (ZREM + HDEL of the tags, under o's keys).
func (e *executor) ack(o *options, tags ...string) {
	if len(tags) > 0 {
		e.push(job{o: o, acks: append([]string(nil), tags...)}, true)
	}
}

// ackThen queues acknowledgements and calls done, on the executor
// goroutine, once their pipeline ran (whether it succeeded or not: a failed
// one is retried).
func (e *executor) ackThen(o *options, tags []string, done func()) {
	e.push(job{o: o, acks: append([]string(nil), tags...), done: []func(){done}}, true)
}

// do queues a function.
func (e *executor) do(fn func(ctx context.Context)) { e.push(job{fn: fn}, false) }

// wait blocks until the work queued before the call has run, or d passed.
func (e *executor) wait(d time.Duration) error {
	done := make(chan struct{})
	e.do(func(context.Context) { close(done) })
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-e.done:
		return nil
	case <-t.C:
		return fmt.Errorf("redis: acknowledgements and restores still pending after %v", d)
	}
}

// stop makes run return once everything queued has run, and waits for it.
func (e *executor) stop() {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	<-e.done
}

func (e *executor) run() {
	defer close(e.done)
	ctx := context.Background()
	var retryTimer *time.Timer
	var retryC <-chan time.Time
	for {
		select {
		case <-e.wake:
		case <-retryC:
			retryC = nil
		}
		e.mu.Lock()
		jobs := e.jobs
		e.jobs = nil
		stopping := e.stopping
		e.mu.Unlock()
		var acks []ackGroup
		var done []func()
		acks, e.retry = e.retry, nil
		for _, j := range jobs {
			if j.fn == nil {
				acks = addAcks(acks, j.o, j.acks)
				done = append(done, j.done...)
				continue
			}
			e.flushAcks(ctx, acks, done)
			acks, done = nil, nil
			j.fn(ctx)
		}
		e.flushAcks(ctx, acks, done)
		if stopping {
			e.mu.Lock()
			more := len(e.jobs) > 0
			e.mu.Unlock()
			if !more {
				if len(e.retry) > 0 {
					e.c.o.log.Error("redis: acknowledgements lost at close; the visibility timeout restores them",
						"count", countAcks(e.retry))
				}
				if retryTimer != nil {
					retryTimer.Stop()
				}
				return
			}
			select {
			case e.wake <- struct{}{}:
			default:
			}
			continue
		}
		if len(e.retry) > 0 && retryC == nil {
			if retryTimer == nil {
				retryTimer = time.NewTimer(time.Second)
			} else {
				retryTimer.Reset(time.Second)
			}
			retryC = retryTimer.C
		}
	}
}

// flushAcks deletes the records of acknowledged tags: one ZREM and one HDEL
// per 1000 tags, all in one pipeline. Tags whose pipeline fails are kept
// for the next round. done are called afterwards.
func (e *executor) flushAcks(ctx context.Context, groups []ackGroup, done []func()) {
	defer func() {
		for _, fn := range done {
			fn()
		}
	}()
	if len(groups) == 0 {
		return
	}
	_, err := e.c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, g := range groups {
			o, tags := g.o, g.tags
			index, unacked := o.key(o.unackedIndexKey), o.key(o.unackedKey)
			for i := 0; i < len(tags); i += 1000 {
				chunk := tags[i:min(i+1000, len(tags))]
				members := make([]any, len(chunk))
				for j, t := range chunk {
					members[j] = t
				}
				p.ZRem(ctx, index, members...)
				p.HDel(ctx, unacked, chunk...)
			}
		}
		return nil
	})
	if err != nil {
		e.c.o.log.Warn("redis: acknowledgement failed; retrying", "count", countAcks(groups), "err", err)
		e.retry = append(e.retry, groups...)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf("redis: "+format, args...) }

// ackViaExecutor hands the queued acks whose records exist to the
// executor: the consume socket will not send a script soon.
func (st *store) ackViaExecutor() {
	if len(st.ackq) == 0 {
		return
	}
	q := st.ackq
	st.ackq = nil
	st.ack(q...)
}

// ack settles acknowledged (or dropped) tags: with the next consume script
// when one will be sent soon, else through the executor, whose confirmation
// frees their window slots. A tag whose record is not written yet always
// waits for the script that writes it.
func (st *store) ack(tags ...string) {
	if !st.o.ackEmulation || len(tags) == 0 {
		return
	}
	s := st.cons
	direct := s == nil || s.state != sockOpen || !s.ready || st.waiting() || st.closed
	var now []string
	for _, t := range tags {
		if direct && !st.isUnconfirmed(t) {
			now = append(now, t)
		} else {
			st.ackq = append(st.ackq, t)
		}
	}
	if len(now) > 0 {
		st.execOut += len(now)
		n := len(now)
		st.c.exec.ackThen(st.o, now, func() { st.completeExec(n) })
	}
}

// isUnconfirmed reports whether tag belongs to a message whose record the
// next consume script writes.
func (st *store) isUnconfirmed(tag string) bool {
	for _, p := range st.unconfirmed {
		if p.tag == tag {
			return true
		}
	}
	return false
}

// confirm marks the messages a script recorded: what waited for their
// records runs now.
func (st *store) confirm(ps []*popped) {
	if len(ps) == 0 {
		return
	}
	for _, p := range ps {
		p.unconfirmed = false
	}
	st.unconfirmed = slices.DeleteFunc(st.unconfirmed, func(p *popped) bool { return !p.unconfirmed })
	if len(st.unconfirmed) > 0 {
		return
	}
	fns := st.afterConfirm
	st.afterConfirm = nil
	for _, fn := range fns {
		fn()
	}
}

// settleRestore runs a restore (requeue or restore settlement) on the
// executor, once the message's record exists.
func (st *store) settleRestore(tag string, fn func(ctx context.Context)) {
	if st.isUnconfirmed(tag) {
		st.afterConfirm = append(st.afterConfirm, func() { st.settleRestore(tag, fn) })
		return
	}
	st.execOut++
	c := st.c
	c.exec.do(func(ctx context.Context) {
		fn(ctx)
		st.completeExec(1)
	})
}
