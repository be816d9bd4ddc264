package redis

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// Items 6 and 7: restore_visible scans on calls 1, 1+N, 1+2N...; a
// throttle of 0 scans every time. Each scan is a request to the sweeper.
func TestRestoreVisibleThrottle(t *testing.T) {
	for _, tc := range []struct {
		throttle int
		calls    int
		scans    int
	}{{3, 6, 2}, {10, 10, 1}, {10, 11, 2}, {0, 4, 4}, {1, 3, 3}} {
		c := &Conn{o: &options{restoreThrottle: tc.throttle}}
		c.sweep = newSweeper(c)
		p := &multiPoller{c: c}
		scans := 0
		for i := 0; i < tc.calls; i++ {
			p.restoreVisible()
			select {
			case <-c.sweep.kick:
				scans++
			default:
			}
		}
		if scans != tc.scans {
			t.Errorf("throttle %d, %d calls: %d scans, want %d", tc.throttle, tc.calls, scans, tc.scans)
		}
	}
}

// Requests made while a sweep is pending coalesce into one.
func TestSweepRequestsCoalesce(t *testing.T) {
	s := newSweeper(&Conn{})
	for i := 0; i < 5; i++ {
		s.request()
	}
	if n := len(s.kick); n != 1 {
		t.Errorf("%d sweeps pending after 5 requests, want 1", n)
	}
}

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
		m, err := decodeEnvelope([]byte(r))
		if err != nil {
			t.Fatalf("%s holds %q: %v", key, r, err)
		}
		out[i] = m
	}
	return out
}

// A sweep restores exactly the tags past the visibility timeout, over
// several batches, to the priority key of each message, marked
// redelivered, and in the order they were delivered in (the oldest is
// consumed first, as after Kombu's sweep).
func TestSweepRestoresExpiredInOrder(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 60})
	ctx := ctxT(t)
	ch := e.channel()
	const n = 2*sweepBatch + 50
	prio := func(i int) int { return 9 * (i % 5 / 4) } // every fifth: priority 9
	orphans := makeOrphans(t, e, ch, "sq", "s%04d", n, prio, 1000)
	// Three records of a live consumer, delivered just now.
	publish(t, ch, "sq", "live%d", 3, nil)
	live, _, err := e.conn.pop(ctx, e.tr.o.stepKeys("sq"), 3, true)
	if err != nil || len(live) != 3 {
		t.Fatal(live, err)
	}

	e.conn.sweep.sweep(ctx)

	left, _ := e.rdb.ZRange(ctx, e.prefix+"unacked_index", 0, -1).Result()
	fields, _ := e.rdb.HKeys(ctx, e.prefix+"unacked").Result()
	slices.Sort(left)
	slices.Sort(fields)
	want := []string{live[0].tag, live[1].tag, live[2].tag}
	slices.Sort(want)
	if !slices.Equal(left, want) || !slices.Equal(fields, want) {
		t.Errorf("after the sweep: index %v, hash %v; want the live records %v only", left, fields, want)
	}
	for _, k := range []struct {
		key  string
		prio int
	}{{"sq", 0}, {e.tr.o.queueKey("sq", 9), 9}} {
		var bodies, wantBodies []string
		for i, o := range orphans {
			if prio(i) == k.prio {
				wantBodies = append(wantBodies, o.body)
			}
		}
		for _, m := range consumed(t, e, e.prefix+k.key) {
			bodies = append(bodies, string(m.Body))
			if m.Headers["redelivered"] != true || !m.DeliveryInfo.Redelivered {
				t.Errorf("%s restored without the redelivered marks: %v %+v", m.Body, m.Headers, m.DeliveryInfo)
			}
		}
		if !slices.Equal(bodies, wantBodies) {
			t.Errorf("%q consumes %d messages %v..., want %d in delivery order %v...",
				k.key, len(bodies), head(bodies), len(wantBodies), head(wantBodies))
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 6)] }

// The batch script restores only what is still as the sweep read it: a tag
// acked between the read and the script, one delivered again (its score
// refreshed), and one whose record changed are left alone; the next sweep
// restores the changed one (still past the deadline) and leaves the live
// ones.
func TestSweepBatchSkipsAckedAndRedelivered(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 60})
	ctx := ctxT(t)
	ch := e.channel()
	orphans := makeOrphans(t, e, ch, "bq", "b%d", 4, nil, 1000)
	tags := []string{orphans[0].tag, orphans[1].tag, orphans[2].tag, orphans[3].tag}
	items, err := ch.st.readRecords(ctx, tags)
	if err != nil {
		t.Fatal(err)
	}
	unacked, index := e.prefix+"unacked", e.prefix+"unacked_index"
	// Between the read and the script: b1 is acked, b2 delivered again
	// (the consumer's new record), b3's record rewritten with its old score.
	e.rdb.ZRem(ctx, index, tags[1])
	e.rdb.HDel(ctx, unacked, tags[1])
	e.rdb.ZAdd(ctx, index, goredis.Z{Score: float64(time.Now().Unix()), Member: tags[2]})
	rec3, _ := e.rdb.HGet(ctx, unacked, tags[3]).Result()
	rec3 = strings.Replace(rec3, `"bq"]`, `"bq" ]`, 1)
	e.rdb.HSet(ctx, unacked, tags[3], rec3)

	got, err := e.conn.runRestore(ctx, deadline(time.Now(), e.tr.o.visibility), false, items)
	if err != nil {
		t.Fatal(err)
	}
	if want := (restoreCounts{restored: 1, acked: 1, redelivered: 1, changed: 1}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if ms := consumed(t, e, e.prefix+"bq"); len(ms) != 1 || string(ms[0].Body) != "b0" {
		t.Errorf("bq holds %d messages, want b0 only", len(ms))
	}
	if ok, _ := e.rdb.HExists(ctx, unacked, tags[2]).Result(); !ok {
		t.Error("the record of the message delivered again was deleted")
	}

	e.conn.sweep.sweep(ctx)
	var bodies []string
	for _, m := range consumed(t, e, e.prefix+"bq") {
		bodies = append(bodies, string(m.Body))
	}
	if want := []string{"b3", "b0"}; !slices.Equal(bodies, want) {
		t.Errorf("after a second sweep bq consumes %v, want %v", bodies, want)
	}
	if left, _ := e.rdb.HKeys(ctx, unacked).Result(); !slices.Equal(left, []string{tags[2]}) {
		t.Errorf("records left %v, want only the redelivered %s", left, tags[2])
	}
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
	stale := restoreItem{tag: orphans[2].tag, sha: sha1Of([]byte("another record")),
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

// The sweep holds the mutex as a short lease (unacked_mutex_expire capped
// at maxSweepLease) and renews it before each batch.
func TestSweepLeaseRenewed(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 60})
	ctx := ctxT(t)
	ch := e.channel()
	makeOrphans(t, e, ch, "lq", "l%d", 3*sweepBatch, nil, 1000)
	mutex := e.prefix + "unacked_mutex"
	var pttls []time.Duration
	e.conn.sweep.beforeBatch = func(batch int) {
		d, err := e.rdb.PTTL(ctx, mutex).Result()
		if err != nil {
			t.Errorf("PTTL: %v", err)
		}
		pttls = append(pttls, d)
		// Take the expiry off: only the renewal before this batch can
		// give it one again.
		e.rdb.Persist(ctx, mutex)
	}
	e.conn.sweep.sweep(ctx)
	e.conn.sweep.beforeBatch = nil
	if len(pttls) < 3 {
		t.Fatalf("the sweep ran %d batches, want at least 3", len(pttls))
	}
	for i, d := range pttls {
		if d <= 0 || d > maxSweepLease {
			t.Errorf("before batch %d the mutex's PTTL is %v, want a lease in (0, %v]", i, d, maxSweepLease)
		}
	}
	if n, _ := e.rdb.Exists(ctx, mutex).Result(); n != 0 {
		t.Error("the sweep did not release the mutex")
	}
	if n, _ := e.rdb.LLen(ctx, e.prefix+"lq").Result(); n != 3*sweepBatch {
		t.Errorf("%d restored, want %d", n, 3*sweepBatch)
	}
}

// A sweeper killed while holding the mutex (the test sets it with the
// lease a sweep takes, and never releases it) holds back the next sweep
// only until the lease expires, not for unacked_mutex_expire.
func TestSweepAfterKilledSweeper(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 60, "unacked_mutex_expire": 2})
	ctx := ctxT(t)
	ch := e.channel()
	makeOrphans(t, e, ch, "kq", "k%d", 10, nil, 1000)
	mutex := e.prefix + "unacked_mutex"
	lease := e.tr.o.sweepLease()
	if lease != 2*time.Second {
		t.Fatalf("lease %v with unacked_mutex_expire=2, want 2s", lease)
	}
	if err := e.rdb.SetArgs(ctx, mutex, "killed-sweeper", goredis.SetArgs{Mode: "NX", TTL: lease}).Err(); err != nil {
		t.Fatal(err)
	}
	e.conn.sweep.sweep(ctx)
	if n, _ := e.rdb.ZCard(ctx, e.prefix+"unacked_index").Result(); n != 10 {
		t.Errorf("a sweep restored while another held the mutex: %d of 10 index entries left", n)
	}
	if v, _ := e.rdb.Get(ctx, mutex).Result(); v != "killed-sweeper" {
		t.Errorf("the mutex holds %q, want the killed sweeper's token", v)
	}
	// Sweep every 50 ms (as the hub's timer would) until the orphans are
	// back; the guard is far below Kombu's 300 s.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		e.conn.sweep.sweep(ctx)
		if n, _ := e.rdb.LLen(ctx, e.prefix+"kq").Result(); n == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the orphans were not restored after the killed sweeper's lease")
		}
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d records left", n)
	}
}

// A sweep in progress does not hold back acknowledgements: while a sweep
// over thousands of orphans is held between two batches (mutex taken,
// most orphans still recorded), a consumer's deliveries are acked and
// their records deleted. When the sweep goes on, it restores the rest.
func TestSweepDoesNotDelayAcks(t *testing.T) {
	const orphans, msgs = 3000, 50
	e := newEnv(t, map[string]any{"visibility_timeout": 60, "unacked_restore_interval": 3600})
	ctx := ctxT(t)
	ch := e.channel()
	makeOrphans(t, e, ch, "oq", "o%d", orphans, nil, 1000)
	paused, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	e.conn.sweep.beforeBatch = func(batch int) {
		if batch == 3 {
			close(paused)
			<-release
		}
	}
	publish(t, ch, "aq", "a%d", msgs, nil)
	// Consuming starts the first sweep (Kombu's on_poll_init).
	out := consumeN(t, ch, "aq", false, true)
	waitFor(t, paused, "the sweep to reach its fourth batch")
	var tags []string
	for i := 0; i < msgs; i++ {
		tags = append(tags, waitFor(t, out, "a delivery").DeliveryInfo.DeliveryTag)
	}
	unacked := e.prefix + "unacked"
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left := 0
		for _, tag := range tags {
			if ok, _ := e.rdb.HExists(ctx, unacked, tag).Result(); ok {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acked records still there while the sweep is held", left, msgs)
		}
	}
	if n, _ := e.rdb.Exists(ctx, e.prefix+"unacked_mutex").Result(); n != 1 {
		t.Error("the held sweep's mutex is gone")
	}
	if n, _ := e.rdb.HLen(ctx, unacked).Result(); n != orphans-3*sweepBatch {
		t.Errorf("%d records while the sweep is held after 3 batches, want %d", n, orphans-3*sweepBatch)
	}
	once.Do(func() { close(release) })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _ := e.rdb.LLen(ctx, e.prefix+"oq").Result(); n == orphans {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep did not finish after it was released")
		}
	}
	if n, _ := e.rdb.HLen(ctx, unacked).Result(); n != 0 {
		t.Errorf("%d records left", n)
	}
}

// The orphan-restore-while-draining case of issue 9: N orphans (what a
// consumer killed holding N deliveries leaves: records past the visibility
// timeout, messages in no list) and a backlog of 3N messages in the same
// queue; one consumer (prefetch 100, visibility_timeout 3, a sweep every
// 100 ms) drains everything and acks each delivery. Every message,
// orphans included, must be delivered exactly once: counting the dead
// consumer's deliveries, the duplicates equal the orphans.
//
// N is 1,500; KOMBU_HEAVY=1 makes it 15,000 (the figure).
func TestOrphanRestoreWhileDraining(t *testing.T) {
	n := 1500
	guard := 2 * time.Minute
	if os.Getenv("KOMBU_HEAVY") == "1" {
		n, guard = 15000, 15*time.Minute
	}
	e := newEnv(t, map[string]any{"visibility_timeout": 3, "unacked_restore_interval": "0.1",
		"unacked_restore_throttle": 1})
	ctx, cancel := context.WithTimeout(context.Background(), guard+time.Minute)
	defer cancel()
	ch := e.channel()
	makeOrphans(t, e, ch, "dq", "orphan-%06d", n, nil, 60)
	publish(t, ch, "dq", "backlog-%06d", 3*n, nil)
	total := 4 * n

	// deliveries is written by the consumer callback (hub goroutine) and
	// read by the test goroutine.
	var mu sync.Mutex
	deliveries := make(map[string]int, total)
	redelivered := 0
	if err := ch.Qos(ctx, 100); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "dq"}, func(m *transport.Message) {
		mu.Lock()
		deliveries[string(m.Body)]++
		if m.DeliveryInfo.Redelivered {
			redelivered++
		}
		mu.Unlock()
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	})
	if err != nil {
		t.Fatal(err)
	}
	unacked, index, key := e.prefix+"unacked", e.prefix+"unacked_index", e.prefix+"dq"
	// The orphans are scored a minute back; the consumer's own records
	// (its unacknowledged deliveries, restored orphans included) are newer.
	own := strconv.FormatInt(time.Now().Unix()-30, 10)
	maxRecords, maxOwn, lastLog := int64(0), int64(0), time.Now()
	for {
		recs, err1 := e.rdb.HLen(ctx, unacked).Result()
		queued, err2 := e.rdb.LLen(ctx, key).Result()
		mine, err3 := e.rdb.ZCount(ctx, index, own, "+inf").Result()
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		maxRecords, maxOwn = max(maxRecords, recs), max(maxOwn, mine)
		mu.Lock()
		distinct, sum := len(deliveries), 0
		for _, c := range deliveries {
			sum += c
		}
		mu.Unlock()
		if time.Since(lastLog) >= time.Second {
			t.Logf("%5.1fs: delivered %d (distinct %d of %d), queued %d, unacked records %d (the consumer's %d)",
				time.Since(start).Seconds(), sum, distinct, total, queued, recs, mine)
			lastLog = time.Now()
		}
		if distinct == total && queued == 0 && recs == 0 {
			break
		}
		if time.Since(start) > guard {
			t.Fatalf("not drained after %v: delivered %d (distinct %d of %d), queued %d, records %d",
				guard, sum, distinct, total, queued, recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	dups, dupOrphans := 0, 0
	for body, c := range deliveries {
		if c > 1 {
			dups += c - 1
			if strings.HasPrefix(body, "orphan-") {
				dupOrphans += c - 1
			}
		}
	}
	t.Logf("N=%d: %d messages drained in %v; deliveries %d, duplicates %d (%d of orphans), "+
		"redelivered-marked %d; most unacked records seen %d, of them the consumer's own at most %d (prefetch 100)",
		n, total, time.Since(start).Round(time.Millisecond), total+dups, dups, dupOrphans, redelivered, maxRecords, maxOwn)
	if dups != 0 {
		t.Errorf("%d duplicate deliveries (%d of orphans) while draining %d orphans and %d backlog; "+
			"with the dead consumer's %d deliveries the duplicates are %d, want %d",
			dups, dupOrphans, n, 3*n, n, n+dups, n)
	}
	if redelivered != n {
		t.Errorf("%d deliveries marked redelivered, want the %d orphans", redelivered, n)
	}
	for i := 0; i < n; i++ {
		if c := deliveries[fmt.Sprintf("orphan-%06d", i)]; c != 1 {
			t.Errorf("orphan %d delivered %d times", i, c)
			break
		}
	}
}
