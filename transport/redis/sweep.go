package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// The restores (kombu-spec §1.13: Kombu's restore_by_tag), each batch of
// restores one atomic script.

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

// The scripts as go-redis runs them: EVALSHA, and EVAL after NOSCRIPT.
var restoreScript = goredis.NewScript(restoreSrc)

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
	o := c.o
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
	o := st.o
	raw, err := st.c.rdb.HGet(ctx, o.key(o.unackedKey), tag).Bytes()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	it := restoreItem{tag: tag}
	if raw != nil {
		it.sha = sha1Bytes(raw)
		it.pushes = st.restorePushes(ctx, raw, m)
	}
	n, err := st.c.runRestore(ctx, "", leftmost, []restoreItem{it})
	if err == nil && n.restored+n.dropped == 0 {
		o.log.Debug("redis: restore_by_tag: the record went away or changed after it was read; left alone", "delivery_tag", tag)
	}
	return err
}

func sha1Bytes(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// restorePushes decodes an unacked value [envelope, exchange, routing_key]
// and returns where the marked envelope goes (Kombu's
// _do_restore_message); failures are logged, as Kombu logs them. A string
// first element holds the bytes of a message that was not JSON.
func (st *store) restorePushes(ctx context.Context, raw []byte, m *transport.Message) []push {
	o := st.o
	var rec []json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil || len(rec) < 3 {
		o.log.Error("redis: unacked record is not [envelope, exchange, routing_key]; dropped", "err", err)
		return nil
	}
	var ex, rk string
	json.Unmarshal(rec[1], &ex)
	json.Unmarshal(rec[2], &rk)
	env := []byte(rec[0])
	var s string
	if len(env) > 0 && env[0] == '"' && json.Unmarshal(env, &s) == nil {
		env = []byte(s) // a message that was not JSON, recorded as a string
	}
	var headers map[string]any
	priority := 0
	if marked, err := transport.MarkRedelivered(env); err == nil {
		env = marked
		if dm, err := transport.DecodeEnvelope(env); err == nil {
			headers, priority = dm.Headers, dm.Properties.Priority
		}
	} else {
		o.log.Warn("redis: restoring a message that is not a Kombu envelope as it is", "err", err)
	}
	queues, err := st.ch.Lookup(ctx, ex, rk, headers)
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
