package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// collector records deliveries (hub goroutine) for the tests below.
type collector struct {
	mu   sync.Mutex
	got  []*transport.Message
	seen chan string
}

func newCollector() *collector { return &collector{seen: make(chan string, 100)} }

func (c *collector) add(m *transport.Message) {
	c.mu.Lock()
	c.got = append(c.got, m)
	c.mu.Unlock()
	c.seen <- string(m.Body)
}

func (c *collector) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.got {
		out = append(out, string(m.Body))
	}
	sort.Strings(out)
	return out
}

// A BLMOVE reply lost with its connection: the message is in the
// processing list, and the reconnected socket's first script records it
// and delivers it, once.
func TestLostWaitReplyRecovered(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "lw"}, func(m *transport.Message) {
		col.add(m)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, ch.st, rWait)
	st := ch.st
	// Stop reading the socket: the reply stays unread in the kernel.
	e.h.Call(ctx, func() { e.h.RemoveReader(st.cons.fd) })
	if err := ch.Publish(ctx, textMsg("m1"), "", "lw", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLen(t, e, st.pKey, 1)
	e.h.Call(ctx, func() { st.cons.fail(errors.New("test: connection lost with the reply unread")) })
	if got := waitFor(t, col.seen, "the recovered message"); got != "m1" {
		t.Fatalf("got %q", got)
	}
	waitEmpty(t, e, st.pKey)
	select {
	case b := <-col.seen:
		t.Errorf("%q delivered again", b)
	case <-time.After(300 * time.Millisecond):
	}
}

// A consume script whose reply is lost after it ran: the messages it popped
// and recorded are delivered after the reconnect (from the delivering
// hash), and the message the wait had delivered before it is not delivered
// again.
func TestLostScriptReplyRecovered(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	st := ch.st
	var once sync.Once
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "ls"}, func(m *transport.Message) {
		col.add(m)
		once.Do(func() {
			// On the hub, right after the wait delivered m1: the script
			// that follows will pop m2 and m3, and its reply is not read.
			for _, b := range []string{"m2", "m3"} {
				if err := ch.Publish(context.Background(), textMsg(b), "", "ls", transport.PublishOptions{}); err != nil {
					t.Error(err)
				}
			}
			e.h.RemoveReader(st.cons.fd)
		})
	}); err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, st, rWait)
	if err := ch.Publish(ctx, textMsg("m1"), "", "ls", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, col.seen, "m1"); got != "m1" {
		t.Fatalf("first delivery %q", got)
	}
	waitHLen(t, e, e.prefix+"unacked", 3) // the script ran: m1, m2, m3 recorded
	e.h.Call(ctx, func() { st.cons.fail(errors.New("test: connection lost with the script's reply unread")) })
	for range 2 {
		waitFor(t, col.seen, "a recovered message")
	}
	if got := fmt.Sprint(col.bodies()); got != "[m1 m2 m3]" {
		t.Fatalf("delivered %s, want [m1 m2 m3]", got)
	}
	for _, m := range col.got {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}
	waitEmpty(t, e, st.pKey)
	select {
	case b := <-col.seen:
		t.Errorf("%q delivered again", b)
	case <-time.After(300 * time.Millisecond):
	}
}

// A consumer that died with a message in its processing list: once its
// lease expired, the sweep of a live consumer turns it into an unacked
// record scored with the dead consumer's last renewal, and a live lease is
// left alone.
func TestDeadConsumerProcessingListConverted(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	o := e.conn.o
	env, err := encodeEnvelope(&transport.Message{Body: []byte("orphan"), ContentType: "text/plain",
		ContentEncoding: "utf-8", DeliveryInfo: transport.DeliveryInfo{RoutingKey: "dq", DeliveryTag: "tag-orphan"}}, "base64")
	if err != nil {
		t.Fatal(err)
	}
	expired := time.Now().Add(-time.Second)
	alive := time.Now().Add(time.Minute)
	e.rdb.ZAdd(ctx, o.registryKey(), goredis.Z{Score: float64(expired.UnixMilli()), Member: "dead"},
		goredis.Z{Score: float64(alive.UnixMilli()), Member: "alive"})
	e.rdb.LPush(ctx, o.processingKey("dead"), env)
	e.rdb.HSet(ctx, o.deliveringKey("dead"), "", "7")
	e.rdb.LPush(ctx, o.processingKey("alive"), env)
	e.conn.convertDead(ctx)
	rec, err := e.rdb.HGet(ctx, e.prefix+"unacked", "tag-orphan").Result()
	if err != nil {
		t.Fatalf("no record of the dead consumer's message: %v", err)
	}
	if r, ok := parseRecord([]byte(rec)); !ok || string(r.env) != string(env) || r.rk != "dq" {
		t.Errorf("record %q", rec)
	}
	sc, _ := e.rdb.ZScore(ctx, e.prefix+"unacked_index", "tag-orphan").Result()
	if want := float64(expired.Add(-o.leaseTTL()).Unix()); sc < want || sc > want+1 {
		t.Errorf("score %v, want the last renewal %v", sc, want)
	}
	if n, _ := e.rdb.Exists(ctx, o.processingKey("dead"), o.deliveringKey("dead")).Result(); n != 0 {
		t.Errorf("the dead consumer's keys are left (%d)", n)
	}
	if ids, _ := e.rdb.ZRange(ctx, o.registryKey(), 0, -1).Result(); fmt.Sprint(ids) != "[alive]" {
		t.Errorf("registry %v, want [alive]", ids)
	}
	if n, _ := e.rdb.LLen(ctx, o.processingKey("alive")).Result(); n != 1 {
		t.Errorf("a live consumer's processing list was touched (%d left)", n)
	}
}

// Without invalidation messages (a server that refuses HELLO 3 or CLIENT
// TRACKING), the keys the wait does not block on are polled once per
// brpop_timeout: messages on other queues and priorities still come.
func TestConsumeWithoutTracking(t *testing.T) {
	e := newEnvOpts(t, map[string]any{"polling_interval": "0.2"}, func(o *options) { o.noTracking = true })
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	for _, q := range []string{"nt1", "nt2"} {
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			col.add(m)
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitConsumeSocket(t, e, ch.st, rWait)
	var tracking bool
	e.h.Call(ctx, func() { tracking = ch.st.cons.tracking })
	if tracking {
		t.Fatal("tracking is on")
	}
	for i, q := range []string{"nt1", "nt2", "nt2"} {
		m := textMsg(q + "-" + strconv.Itoa(i))
		m.Properties.Priority = 3 * i
		if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, col.seen, "a delivery without tracking")
	}
	waitEmpty(t, e, ch.st.pKey)
}

// With tracking, a consumer blocked on one queue's key gets a message
// pushed to another queue, and to a priority key, through the invalidation
// message that ends its wait.
func TestInvalidationWakesOtherKeys(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	for _, q := range []string{"iv1", "iv2"} {
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			col.add(m)
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		waitConsumeSocket(t, e, ch.st, rWait)
		var primary string
		e.h.Call(ctx, func() { primary = ch.st.primaryQueue })
		q := "iv1"
		if primary == q {
			q = "iv2" // the queue the wait does not block on
		}
		m := textMsg(fmt.Sprint(q, "-", i))
		m.Properties.Priority = 3 * (i % 3)
		if err := ch.Publish(ctx, m, "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := waitFor(t, col.seen, "a delivery woken by an invalidation"); got != string(m.Body) {
			t.Fatalf("got %q, want %q", got, m.Body)
		}
	}
	waitEmpty(t, e, ch.st.pKey)
}

// The unacked records of a consumer stay within its prefetch window plus
// the message the wait may have handed over: acks free a slot only once
// their records are gone, whether they ride with a script or go through
// the executor (acks made from another goroutine, late).
func TestRecordsStayWithinWindow(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	const prefetch, total = 10, 600
	reqs := make([]PublishRequest, total)
	for i := range reqs {
		reqs[i] = PublishRequest{Message: textMsg(strconv.Itoa(i)), RoutingKey: "win"}
	}
	if err := ch.PublishBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(ctx, prefetch); err != nil {
		t.Fatal(err)
	}
	acks := make(chan string, total)
	var mu sync.Mutex
	maxRecords, delivered := int64(0), 0
	done := make(chan struct{})
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "win"}, func(m *transport.Message) {
		n, err := e.rdb.HLen(context.Background(), e.prefix+"unacked").Result()
		acks <- m.DeliveryInfo.DeliveryTag // before done closes: the acker drains what is queued
		mu.Lock()
		if err == nil && n > maxRecords {
			maxRecords = n
		}
		delivered++
		if delivered == total {
			close(done)
		}
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; ; i++ {
			select {
			case tag := <-acks:
				if i%7 == 0 {
					time.Sleep(time.Millisecond)
				}
				ch.Ack(tag)
			case <-done:
				for {
					select {
					case tag := <-acks:
						ch.Ack(tag)
					default:
						return
					}
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("delivered %d of %d", delivered, total)
	}
	waitEmpty(t, e, ch.st.pKey)
	mu.Lock()
	defer mu.Unlock()
	if maxRecords > prefetch+1 {
		t.Errorf("up to %d unacked records with prefetch %d", maxRecords, prefetch)
	}
	t.Logf("at most %d unacked records with prefetch %d", maxRecords, prefetch)
}

// Closing a channel whose consumer holds a message the wait handed over,
// before the script recorded it: the message goes back to its queue, and
// the consumer's keys and registration are gone.
func TestCloseWithUnconfirmedMessage(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	st := ch.st
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "cu"}, func(m *transport.Message) {
		col.add(m)
		e.h.RemoveReader(st.cons.fd) // the script's reply is not read before Close
	}); err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, st, rWait)
	if err := ch.Publish(ctx, textMsg("held"), "", "cu", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, col.seen, "the held message")
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.LLen(ctx, e.prefix+"cu").Result(); n != 1 {
		t.Errorf("queue holds %d messages after close, want the held one back", n)
	}
	o := e.conn.o
	if n, _ := e.rdb.Exists(ctx, e.prefix+"unacked", st.pKey, st.dKey).Result(); n != 0 {
		t.Errorf("%d of unacked, the processing list and the delivering hash left", n)
	}
	if n, _ := e.rdb.ZCard(ctx, o.registryKey()).Result(); n != 0 {
		t.Errorf("%d consumers still registered", n)
	}
}

// waitLen waits until the list key holds n elements.
func waitLen(t *testing.T, e *env, key string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if got, _ := e.rdb.LLen(context.Background(), key).Result(); got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %d elements", key, n)
		}
	}
}

// waitHLen waits until the hash key holds n fields.
func waitHLen(t *testing.T, e *env, key string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if got, _ := e.rdb.HLen(context.Background(), key).Result(); got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %d fields", key, n)
		}
	}
}

// Without ack emulation the consume socket does what Kombu does: BRPOP over
// every key, pops without records, nothing in a processing list.
func TestConsumeWithoutAckEmulation(t *testing.T) {
	e := newEnv(t, map[string]any{"ack_emulation": false})
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	for i := range 5 {
		if err := ch.Publish(ctx, textMsg(fmt.Sprint("backlog", i)), "", "na1", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"na1", "na2"} {
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			col.add(m)
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		waitFor(t, col.seen, "a backlog delivery")
	}
	waitConsumeSocket(t, e, ch.st, rWait)
	for _, q := range []string{"na2", "na1"} {
		if err := ch.Publish(ctx, textMsg(q), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := waitFor(t, col.seen, "a delivery after BRPOP"); got != q {
			t.Errorf("got %q, want %q", got, q)
		}
	}
	if n, _ := e.rdb.Exists(ctx, e.prefix+"unacked", e.prefix+"unacked_index", ch.st.pKey, ch.st.dKey,
		e.conn.o.registryKey()).Result(); n != 0 {
		t.Errorf("%d ack-emulation keys exist without ack emulation", n)
	}
}

// A Get whose reply is lost: the script left the tag it took in the
// marker key, and getLost puts the message back at the head of its queue
// and deletes its record.
func TestGetLostReplyPutsBack(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	for _, b := range []string{"first", "second"} {
		if err := ch.Publish(ctx, textMsg(b), "", "gl", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	marker := e.conn.o.key("unacked:get:test")
	// What Get sends; the reply is dropped here, as if the connection broke.
	if _, _, err := e.conn.popMarked(ctx, e.conn.o.stepKeys("gl"), 1, true, marker); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 1 {
		t.Fatalf("%d records after the pop, want 1", n)
	}
	ch.st.getLost(ch.st.o, marker)
	if err := e.conn.exec.wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	m, err := ch.Get(ctx, "gl", true)
	if err != nil || string(m.Body) != "first" || !m.DeliveryInfo.Redelivered {
		t.Fatalf("after getLost: %v %v, want the first message back at the head, redelivered", m, err)
	}
	if n, _ := e.rdb.Exists(ctx, e.prefix+"unacked", marker).Result(); n != 0 {
		t.Errorf("%d of the record and the marker left", n)
	}
}

// Large envelopes are recorded under their own tag, exchange and routing
// key: one whose base64 body the script cuts out before decoding it, and
// one with an escaped text body, decoded whole.
func TestLargeEnvelopeRecords(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	text := append([]byte(`line "one"\`+"\n"), big...)
	for i, tc := range []struct {
		body     []byte
		encoding string
	}{{big, "base64"}, {text, "utf-8"}} {
		tag := fmt.Sprint("big-", i)
		env, err := encodeEnvelope(&transport.Message{Body: tc.body, ContentType: "text/plain",
			ContentEncoding: "utf-8", DeliveryInfo: transport.DeliveryInfo{Exchange: "ex", RoutingKey: "rk", DeliveryTag: tag}},
			tc.encoding)
		if err != nil {
			t.Fatal(err)
		}
		q := e.prefix + fmt.Sprint("bigq", i)
		e.rdb.LPush(ctx, q, env)
		ps, _, err := e.conn.pop(ctx, []string{q}, 1, true)
		if err != nil || len(ps) != 1 || ps[0].tag != tag {
			t.Fatalf("%s: popped %d (err %v), tag %q", tc.encoding, len(ps), err, ps[0].tag)
		}
		rec, err := e.rdb.HGet(ctx, e.prefix+"unacked", tag).Result()
		if err != nil {
			t.Fatalf("%s: no record: %v", tc.encoding, err)
		}
		r, ok := parseRecord([]byte(rec))
		if !ok || string(r.env) != string(env) || r.ex != "ex" || r.rk != "rk" {
			t.Errorf("%s: record of %d bytes, exchange %q, routing key %q", tc.encoding, len(r.env), r.ex, r.rk)
		}
	}
}

// Messages that come one at a time are handed over by the wait, one round
// trip each: the script that records each one leaves the wait blocking,
// with no CLIENT UNBLOCK (a stale dirty mark once sent one per message).
func TestTrickleNeedsNoUnblock(t *testing.T) {
	redisURL(t)
	srv := startPrivateRedis(t, false)
	t.Setenv("KOMBU_TEST_REDIS_URL", srv.url)
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	col := newCollector()
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "tr"}, func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		col.add(m)
	}); err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, ch.st, rWait)
	admin := srv.client()
	defer admin.Close()
	admin.ConfigResetStat(ctx)
	const n = 50
	for i := range n {
		if err := ch.Publish(ctx, textMsg(strconv.Itoa(i)), "", "tr", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, col.seen, "a trickle delivery")
	}
	stats, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(stats, "\n") {
		if strings.HasPrefix(line, "cmdstat_client|unblock:") {
			t.Errorf("%d messages one at a time needed CLIENT UNBLOCK: %s", n, strings.TrimSpace(line))
		}
	}
}
