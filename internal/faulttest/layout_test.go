package faulttest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/testbroker/rediscluster"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// layout names the keys that hold a test's messages, as the transport lays
// them out on the broker the test runs against:
//
//   - on a single Redis, Kombu's layout: each queue's lists are its name
//     and its name plus a priority suffix, and every queue's unacked
//     records are in one hash, "unacked", indexed by one zset,
//     "unacked_index", guarded by one sweep mutex, "unacked_mutex";
//   - on a Redis Cluster (redis+cluster://), the transport's cluster layout
//     (transport/redis/cluster.go): every key of queue Q carries the hash
//     tag {Q}: its lists "{Q}" and "{Q}" plus a suffix, its records
//     "{Q}:unacked" and "{Q}:unacked_index", its mutex "{Q}:unacked_mutex".
//
// The global_keyprefix comes first in both.
type layout struct {
	cluster bool
	prefix  string
}

// listKey is the key of queue q's list of priority suffix s ("" for step
// 0).
func (l layout) listKey(q, s string) string {
	if l.cluster {
		return l.prefix + "{" + q + "}" + s
	}
	return l.prefix + q + s
}

// recordKey is the key of the unacked records kind ("unacked",
// "unacked_index", "unacked_mutex") that holds queue q's.
func (l layout) recordKey(q, kind string) string {
	if l.cluster {
		return l.prefix + "{" + q + "}:" + kind
	}
	return l.prefix + kind
}

// messageKeyGroups returns the keys that hold messages of queues (every
// queue's priority lists and the unacked hash and index of its records),
// in groups whose keys share one hash slot: one group on a single Redis,
// one per queue in a cluster, so that one EXISTS per group answers
// without CROSSSLOT.
func (l layout) messageKeyGroups(queues []string) [][]string {
	var groups [][]string
	var g []string
	for i, q := range queues {
		if i == 0 || l.cluster {
			g = []string{l.recordKey(q, "unacked"), l.recordKey(q, "unacked_index")}
		}
		g = append(g, l.listKey(q, ""))
		for _, s := range prioritySuffixes {
			g = append(g, l.listKey(q, s))
		}
		if l.cluster || i == len(queues)-1 {
			groups = append(groups, g)
		}
	}
	return groups
}

// mutexKeys returns the sweep mutexes of queues' records (one on a single
// Redis).
func (l layout) mutexKeys(queues []string) []string {
	if !l.cluster {
		return []string{l.recordKey("", "unacked_mutex")}
	}
	keys := make([]string, len(queues))
	for i, q := range queues {
		keys[i] = l.recordKey(q, "unacked_mutex")
	}
	return keys
}

// newRedisClient returns a go-redis client of the broker at url: a
// cluster client for redis+cluster://h:p,h:p,... (requests routed by slot,
// MOVED and ASK followed), else a client of the one server.
func newRedisClient(url string) (goredis.UniversalClient, bool, error) {
	if !strings.HasPrefix(url, "redis+cluster://") {
		ropts, err := goredis.ParseURL(url)
		if err != nil {
			return nil, false, err
		}
		return goredis.NewClient(ropts), false, nil
	}
	ep, err := messaging.ParseURL(url)
	if err != nil {
		return nil, true, err
	}
	return goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs: strings.Split(ep.Hostname, ","), Username: ep.UserID, Password: ep.Password,
	}), true, nil
}

// scanKeys returns the keys of rdb matching pattern: SCAN on the server, or
// on every master of a cluster.
func scanKeys(ctx context.Context, rdb goredis.UniversalClient, pattern string) ([]string, error) {
	scan := func(ctx context.Context, c goredis.Cmdable) ([]string, error) {
		var keys []string
		iter := c.Scan(ctx, 0, pattern, 10000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return keys, iter.Err()
	}
	cc, ok := rdb.(*goredis.ClusterClient)
	if !ok {
		return scan(ctx, rdb)
	}
	var mu sync.Mutex // ForEachMaster calls fn on a goroutine per master
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		keys, err := scan(ctx, n)
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s: %w", n.Options().Addr, err)
		}
		return nil
	})
	return all, err
}

// deleteEach deletes keys one DEL each, pipelined (keys of different slots
// cannot share a DEL in a cluster).
func deleteEach(ctx context.Context, rdb goredis.UniversalClient, keys []string) {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys[:n] {
				p.Del(ctx, k)
			}
			return nil
		})
		keys = keys[n:]
	}
}

// TestLayout checks the harness's key names against what the transport
// writes, on a single Redis and on the shared cluster: the judgement of the
// fault tests (busy, leftovers) is only as good as these names. Published
// messages are in the queues' list keys, a message taken without its ack
// has its record under the queue's unacked hash and index, every key of
// the test is a message key or a binding, and once everything is acked no
// message key is left.
func TestLayout(t *testing.T) {
	for _, b := range []struct{ name, env string }{
		{"redis", "KOMBU_TEST_REDIS_URL"},
		{"cluster", rediscluster.EnvURL},
	} {
		t.Run(b.name, func(t *testing.T) {
			url := transporttest.BrokerURL(t, b.env)
			e := newEnv(t, url, 3, 1)
			if e.layout.cluster != (b.name == "cluster") {
				t.Fatalf("%s: layout.cluster = %v", url, e.layout.cluster)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if e.busy(ctx) {
				t.Fatal("busy before anything was published")
			}
			if err := e.publish(ctx, 3); err != nil { // ids 0, 1, 2 to fq0000, fq0001, fq0002
				t.Fatal(err)
			}
			e.checkKeys(ctx, "after the publishes")
			for _, q := range e.queues {
				if n, err := e.rdb.LLen(ctx, e.layout.listKey(q, "")).Result(); err != nil || n != 1 {
					t.Errorf("%q holds %d messages (%v), want 1", e.layout.listKey(q, ""), n, err)
				}
			}
			ch, err := e.conn.DefaultChannel(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []*messaging.Message
			for _, q := range e.queues {
				m, err := messaging.NewQueue(q, messaging.NewExchange(e.exchange, messaging.Direct), q).
					Get(ctx, ch, messaging.GetOptions{})
				if err != nil || m == nil {
					t.Fatalf("get from %s: %v, %v", q, m, err)
				}
				tag := m.DeliveryTag()
				if ok, err := e.rdb.HExists(ctx, e.layout.recordKey(q, "unacked"), tag).Result(); err != nil || !ok {
					t.Errorf("no record of %s in %q (%v)", tag, e.layout.recordKey(q, "unacked"), err)
				}
				if _, err := e.rdb.ZScore(ctx, e.layout.recordKey(q, "unacked_index"), tag).Result(); err != nil {
					t.Errorf("no index entry of %s in %q: %v", tag, e.layout.recordKey(q, "unacked_index"), err)
				}
				got = append(got, m)
			}
			e.checkKeys(ctx, "with the messages unacknowledged")
			for _, m := range got {
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			// The acks are sent asynchronously; the records go soon after.
			for deadline := time.Now().Add(10 * time.Second); e.busy(ctx); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					judged, _, _ := e.leftovers(ctx)
					t.Fatalf("message keys left 10 s after the acks: %q", judged)
				}
			}
		})
	}
}

// checkKeys fails the test if busy says no message is held, or if Redis
// holds a key of the test that is neither a message key, nor a binding
// set, nor a key the transport keeps under a queue's records (its unacked
// key, then ':': the transport's own, which the fault tests list without
// judging).
func (e *env) checkKeys(ctx context.Context, when string) {
	e.t.Helper()
	if !e.busy(ctx) {
		e.t.Errorf("%s: busy says Redis holds no message", when)
	}
	_, others, err := e.leftovers(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range others {
		if !slices.ContainsFunc(e.queues, func(q string) bool {
			return strings.HasPrefix(k, e.layout.recordKey(q, "unacked")+":")
		}) {
			e.t.Errorf("%s: a key the layout does not name: %q", when, k)
		}
	}
}
