package redis

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// orphan is a message a dead consumer left: in no list, recorded in the
// unacked hash and index.
type orphan struct {
	tag  string
	body string
}

// makeOrphans publishes n messages to queue (body fmt.Sprintf(format, i),
// priority prio(i)) and takes them the way a consumer that then died would:
// popped and recorded by the pop script, never acked. Message i is then
// scored age seconds plus a little less for a smaller i in the past, so that
// the index keeps the publication order.
func makeOrphans(t *testing.T, e *env, ch *Channel, queue, format string, n int, prio func(int) int, age int64) []orphan {
	t.Helper()
	ctx := ctxT(t)
	publish(t, ch, queue, format, n, prio)
	out := make([]orphan, n)
	taken := 0
	for taken < n {
		ps, bad, err := e.conn.pop(ctx, e.tr.o.stepKeys(queue), 1000, true)
		if err != nil || bad != nil || len(ps) == 0 {
			t.Fatalf("orphans: popped %d of %d: %v %v", taken, n, err, bad)
		}
		for _, p := range ps {
			body := string(p.message().Body)
			i, err := strconv.Atoi(strings.TrimLeft(body, "abcdefghijklmnopqrstuvwxyz-"))
			if err != nil || i < 0 || i >= n || out[i].tag != "" {
				t.Fatalf("orphans: unexpected body %q (%v)", body, err)
			}
			out[i] = orphan{tag: p.tag, body: body}
		}
		taken += len(ps)
	}
	old := float64(time.Now().Unix() - age)
	index := e.prefix + "unacked_index"
	for i := 0; i < n; i += 1000 {
		zs := make([]goredis.Z, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			zs = append(zs, goredis.Z{Score: old + float64(j)/1000, Member: out[j].tag})
		}
		if err := e.rdb.ZAdd(ctx, index, zs...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// publish sends n messages to queue in batches.
func publish(t *testing.T, ch *Channel, queue, format string, n int, prio func(int) int) {
	t.Helper()
	ctx := ctxT(t)
	reqs := make([]PublishRequest, 0, 1000)
	for i := 0; i < n; i++ {
		m := textMsg(fmt.Sprintf(format, i))
		if prio != nil {
			m.Properties.Priority = prio(i)
		}
		reqs = append(reqs, PublishRequest{Message: m, RoutingKey: queue})
		if len(reqs) == cap(reqs) || i == n-1 {
			if err := ch.PublishBatch(ctx, reqs); err != nil {
				t.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
}

// consumed returns the messages of a list in the order they would be
// consumed (BRPOP takes from the right).
func consumed(t *testing.T, e *env, key string) []*transport.Message {
	t.Helper()
	raws, err := e.rdb.LRange(ctxT(t), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(raws)
	out := make([]*transport.Message, len(raws))
	for i, r := range raws {
		m, err := transport.DecodeEnvelope([]byte(r))
		if err != nil {
			t.Fatalf("%s holds %q: %v", key, r, err)
		}
		out[i] = m
	}
	return out
}

// restore_by_tag pushes and deletes only the record it read: LPUSH with
// leftmost, RPUSH otherwise; a stale read pushes nothing and deletes
// nothing.
func TestRestoreByTagScript(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	orphans := makeOrphans(t, e, ch, "tq", "t%d", 3, nil, 10)
	m := &transport.Message{DeliveryInfo: transport.DeliveryInfo{Queue: "tq"}}
	publish(t, ch, "tq", "queued%d", 2, nil) // queued0 is consumed first
	if err := ch.st.restoreByTag(ctx, orphans[0].tag, true, m); err != nil {
		t.Fatal(err)
	}
	if err := ch.st.restoreByTag(ctx, orphans[1].tag, false, m); err != nil {
		t.Fatal(err)
	}
	// A read that went stale: the record is not the one restored.
	stale := restoreItem{tag: orphans[2].tag, sha: sha1Bytes([]byte("another record")),
		pushes: []push{{key: e.prefix + "tq", env: []byte("stale")}}}
	got, err := e.conn.runRestore(ctx, "", false, []restoreItem{stale})
	if err != nil || got != (restoreCounts{changed: 1}) {
		t.Errorf("stale restore: %+v %v, want one changed", got, err)
	}
	var bodies []string
	for _, m := range consumed(t, e, e.prefix+"tq") {
		bodies = append(bodies, string(m.Body))
	}
	if want := []string{"t1", "queued0", "queued1", "t0"}; !slices.Equal(bodies, want) {
		t.Errorf("tq consumes %v, want %v", bodies, want)
	}
	if left, _ := e.rdb.HKeys(ctx, e.prefix+"unacked").Result(); !slices.Equal(left, []string{orphans[2].tag}) {
		t.Errorf("records left %v, want only %s", left, orphans[2].tag)
	}
	if n, _ := e.rdb.ZCard(ctx, e.prefix+"unacked_index").Result(); n != 1 {
		t.Errorf("%d index entries left, want 1", n)
	}
}
