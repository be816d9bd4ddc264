package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// store is the Redis half of one virtual channel (channel.Store): the
// request methods here run on the caller's goroutine through go-redis; the
// consumer side (consume.go) runs on the hub.
type store struct {
	c  *Conn
	o  *options
	ch *channel.Channel

	// mu guards expires and autoDelete: NewQueue runs on any goroutine, Put
	// and Close read them (Kombu keeps both per channel).
	mu         sync.Mutex
	expires    map[string]int64 // queue -> x-expires in ms
	autoDelete map[string]bool

	// id names this channel's consumer in the lease registry; pKey and dKey
	// are its processing list and delivering hash (lease.go).
	id, pKey, dKey string
	// registered is set once the consume socket registered the lease, and
	// leased once the poller renews it (hub goroutine).
	registered, leased bool
	// execFinished counts settlements the executor finished that the hub
	// has not applied yet, and execPosted says an applyExecDone is posted
	// (completeExec): written by the executor, read by the hub, so atomic.
	execFinished atomic.Int64
	execPosted   atomic.Bool

	hubState // consume.go: owned by the hub goroutine
}

var _ channel.Store = (*store)(nil)

func newStore(c *Conn) *store { return newStoreFor(c, c.o) }

// newStoreFor returns a store whose records are under o's keys (in a
// cluster, one queue's: clusterStore's sub-stores).
func newStoreFor(c *Conn, o *options) *store {
	st := &store{c: c, o: o, expires: make(map[string]int64), autoDelete: make(map[string]bool)}
	st.id = randomHex()
	st.pKey, st.dKey = o.processingKey(st.id), o.deliveringKey(st.id)
	st.hubState.init(st)
	return st
}

// key returns a prefixed key (global_keyprefix).
func (o *options) key(k string) string { return o.prefix + k }

// step returns the priority step of a message priority: the largest step
// not above it after clamping to 0..9 (Kombu's priority(); below every
// step, the last step, as Python's index -1 gives).
func (o *options) step(priority int) int {
	p := channel.Priority(priority, false)
	i := sort.Search(len(o.steps), func(i int) bool { return o.steps[i] > p }) // bisect_right
	if i == 0 {
		return o.steps[len(o.steps)-1]
	}
	return o.steps[i-1]
}

// queueKey is Kombu's _q_for_pri(queue, step), unprefixed: the queue name
// for step 0, else queue+SEP+step.
func (o *options) queueKey(queue string, step int) string {
	if o.cluster {
		return clusterQueueKey(queue, o.sep, o.step(step))
	}
	if s := o.step(step); s != 0 {
		return queue + o.sep + strconv.Itoa(s)
	}
	return queue
}

// stepKeys returns the prefixed keys of every priority step of a queue, in
// step order.
func (o *options) stepKeys(queue string) []string {
	keys := make([]string, 0, len(o.steps))
	for _, s := range o.steps {
		k := o.key(o.queueKey(queue, s))
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

func (o *options) bindingKey(exchange string) string { return o.key("_kombu.binding." + exchange) }

func (o *options) member(r channel.Row) string {
	return r.RoutingKey + o.sep + r.Pattern + o.sep + r.Queue
}

// NewQueue records auto_delete and x-expires for the queue; Redis has
// nothing to create.
func (st *store) NewQueue(ctx context.Context, q transport.Queue) error {
	ms, hasTTL := expiresMS(q.Arguments)
	st.mu.Lock()
	defer st.mu.Unlock()
	if q.AutoDelete {
		st.autoDelete[q.Name] = true
	}
	if hasTTL {
		st.expires[q.Name] = ms
	} else {
		delete(st.expires, q.Name)
	}
	return nil
}

// expiresMS reads the x-expires argument (milliseconds).
func expiresMS(args map[string]any) (int64, bool) {
	switch v := args["x-expires"].(type) {
	case int:
		return int64(v), v > 0
	case int64:
		return v, v > 0
	case int32:
		return int64(v), v > 0
	case float64:
		return int64(v), v > 0
	case time.Duration:
		return v.Milliseconds(), v > 0
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n > 0
	}
	return 0, false
}

func (st *store) ttl(queue string) (int64, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ms, ok := st.expires[queue]
	return ms, ok
}

// HasQueue runs EXISTS over the queue's priority keys (an empty Redis list
// does not exist, so neither does an empty queue). Unlike Kombu, the keys
// carry global_keyprefix.
func (st *store) HasQueue(ctx context.Context, queue string) (bool, error) {
	n, err := st.c.rdb.Exists(ctx, st.o.stepKeys(queue)...).Result()
	if err != nil {
		return false, connError("has_queue", err)
	}
	return n > 0, nil
}

// Size is the sum of LLEN over the queue's priority keys.
func (st *store) Size(ctx context.Context, queue string) (int, error) {
	keys := st.o.stepKeys(queue)
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := st.c.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.LLen(ctx, k)
		}
		return nil
	})
	if err != nil {
		return 0, connError("size", err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n, nil
}

// Purge runs LLEN and DEL on every priority key in one transaction and
// returns the sum of the lengths.
func (st *store) Purge(ctx context.Context, queue string) (int, error) {
	keys := st.o.stepKeys(queue)
	cmds := make([]*goredis.IntCmd, len(keys))
	_, err := st.c.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.LLen(ctx, k)
			p.Del(ctx, k)
		}
		return nil
	})
	if err != nil {
		return 0, connError("purge", err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n, nil
}

// DeleteQueue SREMs the queue's binding members and DELs its priority keys,
// as Kombu's _delete does once per binding this process knows of; with no
// such binding nothing is deleted (Kombu). ifUnused is ignored (Kombu).
func (st *store) DeleteQueue(ctx context.Context, queue string, bindings []channel.Binding, ifUnused bool) (int, error) {
	if len(bindings) == 0 {
		return 0, nil
	}
	keys := st.o.stepKeys(queue)
	cmds := make([]*goredis.IntCmd, len(keys))
	pipe := st.c.rdb.TxPipelined
	if st.o.cluster {
		pipe = st.c.rdb.Pipelined // the binding sets live in other slots
	}
	_, err := pipe(ctx, func(p goredis.Pipeliner) error {
		for _, b := range bindings {
			p.SRem(ctx, st.o.bindingKey(b.Exchange), st.o.member(b.Row))
		}
		for i, k := range keys {
			cmds[i] = p.LLen(ctx, k)
		}
		p.Del(ctx, keys...)
		return nil
	})
	if err != nil {
		return 0, connError("delete queue", err)
	}
	n := 0
	for _, c := range cmds {
		n += int(c.Val())
	}
	return n, nil
}

// Table reads the binding set of an exchange (SMEMBERS), live.
func (st *store) Table(ctx context.Context, exchange string) ([]channel.Row, error) {
	members, err := st.c.rdb.SMembers(ctx, st.o.bindingKey(exchange)).Result()
	if err != nil {
		return nil, connError("get_table", err)
	}
	return parseTable(members, st.o.sep), nil
}

// Bind SADDs the binding member; a binding to a fanout exchange is also
// recorded for PSUBSCRIBE (Kombu's _fanout_queues).
func (st *store) Bind(ctx context.Context, b channel.Binding) error {
	if b.Type == transport.Fanout {
		st.c.t.setFanout(b.Queue, fanoutBinding{exchange: b.Exchange, key: strings.ReplaceAll(b.RoutingKey, "#", "*")})
	}
	if err := st.c.rdb.SAdd(ctx, st.o.bindingKey(b.Exchange), st.o.member(b.Row)).Err(); err != nil {
		return connError("queue_bind", err)
	}
	return nil
}

// Put LPUSHes the envelope to the queue's priority key; when the queue was
// declared here with x-expires, every priority key's TTL is refreshed in the
// same pipeline.
func (st *store) Put(ctx context.Context, queue string, m *transport.Message) error {
	env, err := encodeEnvelope(m, st.o.bodyEncoding)
	if err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	key := st.o.key(st.o.queueKey(queue, m.Properties.Priority))
	ms, hasTTL := st.ttl(queue)
	if st.o.waitReplicas > 0 {
		var expire []string
		if hasTTL {
			expire = st.o.stepKeys(queue)
		}
		return st.putWait(ctx, key, env, expire, time.Duration(ms)*time.Millisecond)
	}
	if !hasTTL {
		if err := st.c.rdb.LPush(ctx, key, env).Err(); err != nil {
			return connError("publish", err)
		}
		return nil
	}
	_, err = st.c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.LPush(ctx, key, env)
		for _, k := range st.o.stepKeys(queue) {
			p.PExpire(ctx, k, time.Duration(ms)*time.Millisecond)
		}
		return nil
	})
	return connError("publish", err)
}

// fanoutTopic is the PUB/SUB channel of an exchange (unprefixed): the
// fanout prefix and the exchange, plus "/"+routing key with fanout_patterns.
func (o *options) fanoutTopic(exchange, routingKey string) string {
	if routingKey != "" && o.fanoutPatterns {
		return o.fanoutPrefix + exchange + "/" + routingKey
	}
	return o.fanoutPrefix + exchange
}

// PutFanout PUBLISHes the envelope and returns how many subscribers got it.
func (st *store) PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error) {
	env, err := encodeEnvelope(m, st.o.bodyEncoding)
	if err != nil {
		return 0, fmt.Errorf("redis: publish: %w", err)
	}
	n, err := st.c.rdb.Publish(ctx, st.o.key(st.o.fanoutTopic(exchange, routingKey)), env).Result()
	if err != nil {
		return 0, connError("publish", err)
	}
	return int(n), nil
}

// Get pops one message from the queue's priority keys in step order
// (Kombu's _get) and, unless noAck, writes its unacked record in the same
// script, before returning it. When the reply does not come back (the
// connection broke, or ctx ended, after the script was sent), the message
// the script may have taken is put back at the head of its queue
// (getLost), instead of waiting for the visibility timeout.
func (st *store) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	o := st.o.forQueue(queue)
	keys := o.stepKeys(queue)
	rec := o.ackEmulation && !noAck
	marker := ""
	if rec {
		marker = o.key(o.unackedKey + ":get:" + randomHex())
	}
	msgs, bad, err := st.c.popFor(ctx, o, keys, 1, rec, marker)
	if err != nil {
		if marker != "" {
			st.getLost(o, marker)
		}
		return nil, connError("get", err)
	}
	if len(msgs) == 0 && bad != nil {
		return nil, connError("get", bad)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("redis: queue %q: %w", queue, transport.ErrEmpty)
	}
	if ms, ok := st.ttl(queue); ok {
		_, err := st.c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys {
				p.PExpire(ctx, k, time.Duration(ms)*time.Millisecond)
			}
			return nil
		})
		if err != nil {
			st.o.log.Warn("redis: refreshing queue TTL failed", "queue", queue, "err", err)
		}
	}
	return msgs[0].message(), nil
}

// getLost puts back, through the executor, the messages a Get whose reply
// was lost took: the script left their tags in the marker key, and each is
// restored to the head of its queue (restore_by_tag). Redis unreachable
// meanwhile leaves them to the visibility timeout.
func (st *store) getLost(o *options, marker string) {
	c := st.c
	c.exec.do(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, c.o.connTimeout+c.o.sockTimeout+5*time.Second)
		defer cancel()
		tags, err := c.rdb.Get(ctx, marker).Result()
		if errors.Is(err, goredis.Nil) {
			return // the script never ran
		}
		if err != nil {
			c.o.log.Warn("redis: get: the reply was lost and Redis cannot say what was taken; "+
				"the visibility timeout restores it", "err", err)
			return
		}
		for _, tag := range strings.Split(tags, "\n") {
			if err := st.restoreByTagFor(ctx, o, tag, false, nil); err != nil {
				c.o.log.Warn("redis: get: putting back a message whose reply was lost failed", "delivery_tag", tag, "err", err)
			}
		}
		c.rdb.Del(ctx, marker)
	})
}

// pop runs the pop script through go-redis. bad is the error of the first
// key the script skipped for not being a list (nil if none).
func (c *Conn) pop(ctx context.Context, keys []string, n int, record bool) (msgs []popped, bad error, err error) {
	return c.popMarked(ctx, keys, n, record, "")
}

// popMarked is pop that, with a marker key, has the script write the tags
// it took there (popSrc, ARGV[4]).
func (c *Conn) popMarked(ctx context.Context, keys []string, n int, record bool, marker string) (msgs []popped, bad error, err error) {
	return c.popFor(ctx, c.o, keys, n, record, marker)
}

// popFor is popMarked with the records under o's keys (in a cluster, the
// queue's: forQueue).
func (c *Conn) popFor(ctx context.Context, o *options, keys []string, n int, record bool, marker string) (msgs []popped, bad error, err error) {
	all := make([]string, 0, len(keys)+3)
	mk := marker
	if mk == "" {
		mk = o.key(o.unackedKey) // never written: ARGV[4] is "0"
	}
	all = append(all, o.key(o.unackedKey), o.key(o.unackedIndexKey), mk)
	all = append(all, keys...)
	res, err := popScript.Run(ctx, c.rdb, all, n, score(time.Now()), flag(record), flag(marker != "")).Slice()
	if err != nil {
		return nil, nil, err
	}
	out := make([]popped, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		idx, _ := res[i].(int64)
		raw, _ := res[i+1].(string)
		tag, _ := res[i+2].(string)
		if idx < 0 && bad == nil && int(-idx) <= len(all) {
			bad = fmt.Errorf("key %q: %s", all[-idx-1], raw)
		}
		if idx < 4 || int(idx) > len(all) {
			continue
		}
		out = append(out, popped{key: all[idx-1], raw: []byte(raw), tag: tag})
	}
	return out, bad, nil
}

// The scripts as go-redis runs them: EVALSHA, and EVAL after NOSCRIPT.
var (
	popScript    = goredis.NewScript(popSrc)
	unlockScript = goredis.NewScript(unlockSrc)
)

// score formats a time as the unacked_index score: Unix seconds, rounded
// up to a whole second. Kombu writes time() as a float; its sweep only
// compares the score with now - visibility_timeout, so a whole second
// restores a message at most one second later, never earlier. The reason
// is the server's cost: while the index is small Redis keeps it as a
// listpack, and each insertion there parses every score before it, which
// for a fractional score is a strtod per entry (measured: ZADD 5.9 µs
// against 1.9 µs with integer scores, building 100 entries).
func score(t time.Time) string {
	return strconv.FormatInt(scoreSeconds(t), 10)
}

// scoreSeconds is score as a number.
func scoreSeconds(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// isConnErr tells the failures that mean the connection is gone (Kombu's
// connection_errors for Redis: ConnectionError, TimeoutError,
// BusyLoadingError, AuthenticationError) from error replies.
func isConnErr(err error) bool {
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "NOAUTH", "WRONGPASS", "READONLY", "MASTERDOWN"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, goredis.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
