package redis

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// The visibility-timeout sweep and the restores (kombu-spec §1.13: Kombu's
// restore_visible and restore_by_tag), each batch of restores one atomic
// script.

const (
	// sweepBatch is how many tags the sweep scans, reads and restores per
	// round: one ZREVRANGEBYSCORE, one HMGET and one restore script.
	sweepBatch = 100
	// maxSweepLease caps how long a sweep holds the unacked_mutex without
	// renewing it: the mutex is SET NX PX with min(unacked_mutex_expire,
	// maxSweepLease) and extended to that again before every batch, so a
	// sweeper that dies holding it blocks the other sweeps (Go's and
	// Kombu's) for at most this long.
	maxSweepLease = 10 * time.Second
)

// sweepLease is the lease the sweep takes the unacked_mutex for.
func (o *options) sweepLease() time.Duration {
	if o.mutexExpire > 0 && o.mutexExpire < maxSweepLease {
		return o.mutexExpire
	}
	return maxSweepLease
}

// restoreSrc restores unacked records atomically: for each tag it pushes
// the envelopes Go routed and deletes the record (ZREM unacked_index, HDEL
// unacked), but only while the record is still the one Go read and, in a
// sweep, while the tag's score is still at most the deadline. A tag acked
// (or restored by someone else) after Go read it, or delivered again since,
// is left alone. No WATCH: nothing is retried, the checks run inside the
// script.
//
//	KEYS[1]    the unacked hash, KEYS[2] the unacked_index zset
//	KEYS[3..]  the lists pushed to
//	ARGV[1]    the deadline (restore only tags scored at most this), or ""
//	           for no score condition (restore_by_tag)
//	ARGV[2]    "1" to LPUSH, anything else to RPUSH
//	ARGV[3..]  per tag: the tag; the SHA-1 of the record Go read ("" when
//	           there was none); n; then n pairs: the index in KEYS of a
//	           list, the envelope to push there
//
// For a tag read without a record, nothing is pushed; its index entry is
// removed if there is still no record (and, in a sweep, the score is past
// the deadline). A record read with n = 0 (Go could not decode or route
// it) is deleted without a push. The reply counts the tags {restored,
// dropped (deleted without a push), acked (record gone meanwhile),
// redelivered (scored past the deadline: delivered again meanwhile),
// changed (the record is not the one read)}.
const restoreSrc = `
local ceil = tonumber(ARGV[1])
local push = 'RPUSH'
if ARGV[2] == '1' then push = 'LPUSH' end
local restored, dropped, acked, redelivered, changed = 0, 0, 0, 0, 0
local i = 3
while i <= #ARGV do
  local tag, sha, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first = i + 3
  i = first + 2 * n
  local sc = redis.call('ZSCORE', KEYS[2], tag)
  local v = redis.call('HGET', KEYS[1], tag)
  if ceil and (not sc or tonumber(sc) > ceil) then
    if v then redelivered = redelivered + 1 else acked = acked + 1 end
  elseif not v then
    if sha == '' then
      redis.call('ZREM', KEYS[2], tag)
      dropped = dropped + 1
    else
      acked = acked + 1
    end
  elseif sha == '' or redis.sha1hex(v) ~= sha then
    changed = changed + 1
  else
    for j = first, i - 1, 2 do
      redis.call(push, KEYS[tonumber(ARGV[j])], ARGV[j + 1])
    end
    redis.call('ZREM', KEYS[2], tag)
    redis.call('HDEL', KEYS[1], tag)
    if n > 0 then restored = restored + 1 else dropped = dropped + 1 end
  end
end
return {restored, dropped, acked, redelivered, changed}
`

// extendSrc renews the unacked_mutex lease if it still holds our token.
//
//	KEYS[1] the mutex, ARGV[1] the token, ARGV[2] the lease in ms
const extendSrc = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`

// The scripts as go-redis runs them: EVALSHA, and EVAL after NOSCRIPT.
var (
	restoreScript = goredis.NewScript(restoreSrc)
	extendScript  = goredis.NewScript(extendSrc)
)

// restoreItem is one tag for restoreSrc.
type restoreItem struct {
	tag    string
	sha    string // SHA-1 (hex) of the record read; "" if there was none
	pushes []push
}

// restoreCounts is restoreSrc's reply.
type restoreCounts struct {
	restored    int // pushed and deleted
	dropped     int // deleted without a push (undecodable, unroutable, or an index entry without a record)
	acked       int // skipped: the record was gone (acked or restored meanwhile)
	redelivered int // skipped: scored past the deadline (delivered again meanwhile)
	changed     int // skipped: the record is not the one read
}

func (a *restoreCounts) add(b restoreCounts) {
	a.restored += b.restored
	a.dropped += b.dropped
	a.acked += b.acked
	a.redelivered += b.redelivered
	a.changed += b.changed
}

type push struct {
	key string
	env []byte
}

// runRestore runs restoreSrc over items: ceil is the sweep's deadline ("":
// none), leftmost selects LPUSH.
func (c *Conn) runRestore(ctx context.Context, ceil string, leftmost bool, items []restoreItem) (restoreCounts, error) {
	return c.runRestoreFor(ctx, c.o, ceil, leftmost, items)
}

// runRestoreFor is runRestore over the records under o's keys.
func (c *Conn) runRestoreFor(ctx context.Context, o *options, ceil string, leftmost bool, items []restoreItem) (restoreCounts, error) {
	keys := []string{o.key(o.unackedKey), o.key(o.unackedIndexKey)}
	at := make(map[string]string)
	args := []any{ceil, flag(leftmost)}
	for _, it := range items {
		args = append(args, it.tag, it.sha, len(it.pushes))
		for _, p := range it.pushes {
			i, ok := at[p.key]
			if !ok {
				keys = append(keys, p.key)
				i = strconv.Itoa(len(keys))
				at[p.key] = i
			}
			args = append(args, i, p.env)
		}
	}
	res, err := restoreScript.Run(ctx, c.rdb, keys, args...).Int64Slice()
	if err != nil {
		return restoreCounts{}, err
	}
	if len(res) != 5 {
		return restoreCounts{}, errorf("restore script replied %v", res)
	}
	return restoreCounts{int(res[0]), int(res[1]), int(res[2]), int(res[3]), int(res[4])}, nil
}

// restoreByTag is Kombu's restore_by_tag, as one atomic script instead of
// a WATCH/MULTI transaction: read the record, then, if it is still the one
// read, delete it from the hash and the index and push the envelope (marked
// redelivered) to every queue its exchange and routing key lead to: RPUSH
// (consumed next), or LPUSH with leftmost (to the back). With no record,
// nothing is pushed (a leftover index entry is removed). A record that
// changed or went away after the read (restored by a sweep, acked, or
// delivered again) is left alone, where Kombu would retry and restore the
// new one. When the routing finds no queue, the message goes back to the
// queue it was delivered from (m), where Kombu would drop it.
func (st *store) restoreByTag(ctx context.Context, tag string, leftmost bool, m *transport.Message) error {
	return st.restoreByTagFor(ctx, st.o, tag, leftmost, m)
}

// restoreByTagFor is restoreByTag for a record under o's keys.
func (st *store) restoreByTagFor(ctx context.Context, o *options, tag string, leftmost bool, m *transport.Message) error {
	raw, err := st.c.rdb.HGet(ctx, o.key(o.unackedKey), tag).Bytes()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	it := restoreItem{tag: tag}
	if raw != nil {
		it.sha = sha1Of(raw)
		it.pushes = st.restorePushes(ctx, o, raw, m)
	}
	n, err := st.c.runRestoreFor(ctx, o, "", leftmost, []restoreItem{it})
	if err == nil && n.restored+n.dropped == 0 {
		o.log.Debug("redis: restore_by_tag: the record went away or changed after it was read; left alone", "delivery_tag", tag)
	}
	return err
}

// restorePushes decodes an unacked value [envelope, exchange, routing_key]
// and returns where the marked envelope goes (Kombu's
// _do_restore_message); failures are logged, as Kombu logs them. A string
// first element holds the bytes of a message that was not JSON.
//
// In a cluster (o names one queue's records: forQueue), the message goes
// back to that queue: the push and the record's deletion must be in one
// slot to be one atomic step (cluster.go).
func (st *store) restorePushes(ctx context.Context, o *options, raw []byte, m *transport.Message) []push {
	rec, ok := parseRecord(raw)
	if !ok {
		o.log.Error("redis: unacked record is not [envelope, exchange, routing_key]; dropped")
		return nil
	}
	env, ex, rk := rec.env, rec.ex, rec.rk
	var headers map[string]any
	priority := 0
	if marked, err := markRedelivered(env); err == nil {
		env = marked
		if dm, err := decodeEnvelope(env); err == nil {
			headers, priority = dm.Headers, dm.Properties.Priority
		}
	} else {
		o.log.Warn("redis: restoring a message that is not a Kombu envelope as it is", "err", err)
	}
	var queues []string
	var err error
	if o.cluster && o.queue != "" {
		queues = []string{o.queue}
	} else {
		queues, err = st.ch.Lookup(ctx, ex, rk, headers)
	}
	if err != nil {
		o.log.Error("redis: lookup for restore failed", "exchange", ex, "routing_key", rk, "err", err)
	}
	if len(queues) == 0 && m != nil && m.DeliveryInfo.Queue != "" {
		queues = []string{m.DeliveryInfo.Queue}
	}
	if len(queues) == 0 {
		o.log.Error("redis: restored message routes to no queue; dropped", "exchange", ex, "routing_key", rk)
	}
	out := make([]push, 0, len(queues))
	for _, q := range queues {
		out = append(out, push{key: o.key(o.queueKey(q, priority)), env: env})
	}
	return out
}

// sweeper runs the visibility-timeout sweep (Kombu's restore_visible) on a
// goroutine of its own, so that a long sweep never holds back the
// executor's acknowledgements. The hub decides when (the restore timer and
// unacked_restore_throttle, multiPoller.restoreVisible) and kicks it;
// kicks that arrive while a sweep is pending or running coalesce into one
// more sweep, and only one sweep runs at a time. It also turns the
// processing lists of dead consumers into unacked records (convertDead,
// lease.go), at every tick of the restore timer (requestConvert), before
// the sweep when both are asked for. One per connection: started by
// Transport.Dial, stopped and joined by Conn.Close.
type sweeper struct {
	c    *Conn
	kick chan struct{} // capacity 1: work asked for and not started yet
	quit chan struct{} // closed by stop
	done chan struct{} // closed when run returns
	// wantSweep and wantConvert say what the pending kick asks for.
	wantSweep, wantConvert atomic.Bool

	// beforeBatch, when set (tests only, before the first request), is
	// called by a sweep before each batch with the batch's number, from 0,
	// once the mutex's lease was taken or renewed for that batch.
	beforeBatch func(batch int)
}

func newSweeper(c *Conn) *sweeper {
	return &sweeper{c: c, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

// request asks for a sweep without waiting. Safe from any goroutine.
func (s *sweeper) request() {
	s.wantSweep.Store(true)
	s.poke()
}

// requestConvert asks for the conversion of dead consumers' processing
// lists without waiting. Safe from any goroutine.
func (s *sweeper) requestConvert() {
	s.wantConvert.Store(true)
	s.poke()
}

func (s *sweeper) poke() {
	select {
	case s.kick <- struct{}{}:
	default: // one is pending already
	}
}

// run sweeps once per request until stop; ctx (the connection's) is
// cancelled when Close starts, which ends a sweep in progress (a batch
// script is atomic: it ran whole or not at all).
func (s *sweeper) run(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			return
		case <-s.kick:
		}
		select {
		case <-s.quit:
			return
		default:
		}
		if s.wantConvert.Swap(false) && !s.c.o.cluster {
			s.c.convertDead(ctx) // a cluster converts with each sweep
		}
		if s.wantSweep.Swap(false) {
			s.sweep(ctx)
		}
	}
}

// stop makes run return (after the sweep in progress, if any) and waits.
func (s *sweeper) stop() {
	close(s.quit)
	<-s.done
}

// sweep is Kombu's restore_visible: under the unacked_mutex (SET NX PX
// with a short lease, renewed before every batch, released with a
// compare-and-delete script), the tags delivered longer than
// visibility_timeout ago are restored in batches of sweepBatch, newest
// first as Kombu scans them (ZREVRANGEBYSCORE), each pushed with RPUSH,
// so that the oldest of a list is consumed first. The deadline is computed once per
// sweep, and each batch is one restoreSrc script, which restores only what
// is still past it: a tag acked or delivered again since the scan is left
// alone. It stops when nothing past the deadline is left, after
// unacked_restore_limit tags (when set), when the mutex is lost, on an
// error, or when the connection closes.
func (s *sweeper) sweep(ctx context.Context) {
	c := s.c
	st := c.anyStore()
	if st == nil {
		return
	}
	if !c.o.cluster {
		s.sweepKeys(ctx, st, c.o)
		return
	}
	// A cluster keeps each queue's records apart (cluster.go): every queue
	// this connection has consumed is swept, on whichever master holds it,
	// after its dead consumers' processing lists became records (with the
	// sweep, not at every tick: that is a command per queue).
	for _, q := range c.sweptQueues() {
		if ctx.Err() != nil {
			return
		}
		oq := c.o.forQueue(q)
		c.convertDeadIn(ctx, oq)
		s.sweepKeys(ctx, st, oq)
	}
}

// sweepKeys is the sweep of the records under o's keys.
func (s *sweeper) sweepKeys(ctx context.Context, st *store, o *options) {
	c := s.c
	// A read first: with nothing past the deadline there is nothing to
	// take the mutex for (Kombu takes it, then scans). An idle cluster
	// queue's sweep is then one command, not four.
	peek, err := c.rdb.ZRevRangeByScore(ctx, o.key(o.unackedIndexKey), &goredis.ZRangeBy{
		Max: deadline(time.Now(), o.visibility), Min: "-inf", Count: 1}).Result()
	if err != nil {
		o.log.Warn("redis: restore_visible: reading the index failed", "err", err)
		return
	}
	if len(peek) == 0 {
		return
	}
	token := randomHex()
	mutex := o.key(o.unackedMutexKey)
	lease := o.sweepLease()
	ok, err := c.rdb.SetNX(ctx, mutex, token, lease).Result()
	if err != nil {
		o.log.Warn("redis: restore_visible: cannot take the mutex", "err", err)
		return
	}
	if !ok {
		return // another consumer is restoring (Kombu's MutexHeld)
	}
	defer func() {
		// Released even when ctx was cancelled (Close): waiting out the
		// lease would hold back the other consumers' sweeps.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := unlockScript.Run(rctx, c.rdb, []string{mutex}, token).Err(); err != nil {
			o.log.Warn("redis: restore_visible: releasing the mutex failed", "err", err)
		}
	}()
	start := time.Now()
	ceil := deadline(start, o.visibility)
	index := o.key(o.unackedIndexKey)
	var total restoreCounts
	scanned, batches := 0, 0
	for o.restoreLimit <= 0 || scanned < o.restoreLimit {
		if ctx.Err() != nil {
			break
		}
		if batches > 0 {
			held, err := extendScript.Run(ctx, c.rdb, []string{mutex}, token, lease.Milliseconds()).Int()
			if err != nil || held == 0 {
				o.log.Warn("redis: restore_visible: lost the mutex's lease; sweep stopped",
					"restored", total.restored, "err", err)
				break
			}
		}
		if s.beforeBatch != nil {
			s.beforeBatch(batches)
		}
		n := sweepBatch
		if o.restoreLimit > 0 {
			n = min(n, o.restoreLimit-scanned)
		}
		tags, err := c.rdb.ZRevRangeByScore(ctx, index, &goredis.ZRangeBy{Max: ceil, Min: "-inf", Count: int64(n)}).Result()
		if err != nil {
			o.log.Warn("redis: restore_visible: reading the index failed", "err", err)
			break
		}
		if len(tags) == 0 {
			break
		}
		batches++
		scanned += len(tags)
		got, err := st.restoreBatch(ctx, o, ceil, tags)
		total.add(got)
		if err != nil {
			o.log.Warn("redis: restore_visible: restore failed", "count", len(tags), "err", err)
			break
		}
		if len(tags) < n || got.changed == len(tags) {
			// Nothing more past the deadline, or every record of the
			// batch changed after it was read: the next sweep reads
			// them again.
			break
		}
	}
	if scanned > 0 {
		o.log.Info("redis: restore_visible: restored unacknowledged messages past the visibility timeout",
			"restored", total.restored, "skipped_acked", total.acked, "skipped_redelivered", total.redelivered,
			"skipped_changed", total.changed, "dropped", total.dropped, "batches", batches, "took", time.Since(start))
	}
}

// deadline is Kombu's ceil = time() - visibility_timeout as a zset score
// bound: a tag scored at most this is restored.
func deadline(now time.Time, visibility time.Duration) string {
	return strconv.FormatFloat(float64(now.Add(-visibility).UnixNano())/1e9, 'f', 6, 64)
}

// restoreBatch reads the records of tags (HMGET), routes them in Go and
// restores them with one restoreSrc script whose deadline is ceil.
func (st *store) restoreBatch(ctx context.Context, o *options, ceil string, tags []string) (restoreCounts, error) {
	items, err := st.readRecordsFor(ctx, o, tags)
	if err != nil {
		return restoreCounts{}, err
	}
	return st.c.runRestoreFor(ctx, o, ceil, false, items)
}

// readRecords reads the records of tags with one HMGET and routes each
// (restorePushes).
func (st *store) readRecords(ctx context.Context, tags []string) ([]restoreItem, error) {
	return st.readRecordsFor(ctx, st.o, tags)
}

// readRecordsFor is readRecords for records under o's keys.
func (st *store) readRecordsFor(ctx context.Context, o *options, tags []string) ([]restoreItem, error) {
	vals, err := st.c.rdb.HMGet(ctx, o.key(o.unackedKey), tags...).Result()
	if err != nil {
		return nil, err
	}
	items := make([]restoreItem, len(tags))
	for i, tag := range tags {
		items[i].tag = tag
		if raw, ok := vals[i].(string); ok {
			items[i].sha = sha1Of([]byte(raw))
			items[i].pushes = st.restorePushes(ctx, o, []byte(raw), nil)
		}
	}
	return items, nil
}

// anyStore returns a store to route restores with (the channels share the
// transport's exchange state).
func (c *Conn) anyStore() *store {
	if ch, ok := c.chans.Any(); ok {
		return ch.st
	}
	return nil
}
