package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

func TestConsumeAck(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	q := "q"
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		if err := ch.Publish(ctx, textMsg(fmt.Sprint(i)), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type got struct {
		body     string
		recorded bool
	}
	out := make(chan got, n)
	if err := ch.Qos(ctx, 10); err != nil {
		t.Fatal(err)
	}
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		// The unacked record exists before the callback runs.
		ok, err := e.rdb.HExists(context.Background(), e.prefix+"unacked", m.DeliveryInfo.DeliveryTag).Result()
		out <- got{string(m.Body), ok && err == nil}
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		g := waitFor(t, out, "delivery")
		if !g.recorded {
			t.Errorf("message %s delivered without an unacked record", g.body)
		}
		seen[g.body] = true
	}
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("message %d not delivered", i)
		}
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d unacked records left after acking everything", n)
	}
}

// consumeN starts a consumer and returns a channel of its deliveries.
func consumeN(t *testing.T, ch *Channel, q string, noAck bool, ack bool) <-chan *transport.Message {
	t.Helper()
	out := make(chan *transport.Message, 1000)
	_, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q, NoAck: noAck}, func(m *transport.Message) {
		out <- m
		if ack {
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A consumer blocked in BLMOVE gets a message published later. When its
// callback runs the message is in Redis, in the consumer's processing list
// (or, if the next script already ran, in the unacked hash), and after the
// ack nothing of it is left.
func TestBLMOVEWakes(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	seen := make(chan string, 10)
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "late"}, func(m *transport.Message) {
		bg := context.Background()
		ok, _ := e.rdb.HExists(bg, e.prefix+"unacked", m.DeliveryInfo.DeliveryTag).Result()
		inList, _ := e.rdb.LRange(bg, ch.st.pKey, 0, -1).Result()
		switch {
		case string(m.Body) != "hello":
			seen <- "wrong body " + string(m.Body)
		case !ok && (len(inList) != 1 || !strings.Contains(inList[0], m.DeliveryInfo.DeliveryTag)):
			seen <- fmt.Sprintf("delivered while neither recorded nor in the processing list (%q)", inList)
		default:
			seen <- ""
		}
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the consumer's BLMOVE is parked on the server.
	waitConsumeSocket(t, e, ch.st, rWait)
	if err := ch.Publish(ctx, textMsg("hello"), "", "late", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if msg := waitFor(t, seen, "delivery"); msg != "" {
		t.Error(msg)
	}
	waitEmpty(t, e, ch.st.pKey)
}

// waitEmpty waits until the unacked hash, the index and the given keys are
// all gone (acks may ride with the next consume script).
func waitEmpty(t *testing.T, e *env, keys ...string) {
	t.Helper()
	keys = append(keys, e.prefix+"unacked", e.prefix+"unacked_index")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		n, err := e.rdb.Exists(context.Background(), keys...).Result()
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			h, _ := e.rdb.HKeys(context.Background(), e.prefix+"unacked").Result()
			t.Fatalf("%d of %q still exist (unacked: %q)", n, keys, h)
		}
	}
}

// waitClients waits until some client of the server runs cmd (CLIENT LIST).
func waitClients(t *testing.T, e *env, cmd string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		list, err := e.rdb.ClientList(context.Background()).Result()
		if err == nil && strings.Contains(strings.ToLower(list), "cmd="+strings.ToLower(cmd)) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no client running %s", cmd)
}

// Item 31: priorities 6, 3, 6 are consumed 3, 6, 6 (lower first).
func TestPriorityOrderConsume(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	for _, x := range []struct {
		b string
		p int
	}{{"first", 6}, {"second", 3}, {"third", 6}, {"zero", 0}} {
		m := textMsg(x.b)
		m.Properties.Priority = x.p
		ch.Publish(ctx, m, "", "pq", transport.PublishOptions{})
	}
	ch.Qos(ctx, 1) // one at a time, so every pop sees every key
	out := consumeN(t, ch, "pq", false, true)
	var order []string
	for i := 0; i < 4; i++ {
		order = append(order, string(waitFor(t, out, "delivery").Body))
	}
	if join(order) != "zero second first third" {
		t.Errorf("order %q", join(order))
	}
}

// Round robin: a busy queue does not starve the others.
func TestRoundRobin(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	for i := 0; i < 20; i++ {
		ch.Publish(ctx, textMsg("a"), "", "qa", transport.PublishOptions{})
	}
	ch.Publish(ctx, textMsg("b"), "", "qb", transport.PublishOptions{})
	ch.Qos(ctx, 1)
	out := make(chan string, 100)
	for _, q := range []string{"qa", "qb"} {
		ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			out <- string(m.Body)
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		})
	}
	pos := -1
	for i := 0; i < 21; i++ {
		if waitFor(t, out, "delivery") == "b" {
			pos = i
		}
	}
	if pos < 0 || pos > 3 {
		t.Errorf("qb's message came at position %d of 21", pos)
	}
}

// With many queues, a script pops from the keys known to hold messages; a
// push to any other consumed key reaches the consumer as Redis's
// invalidation message: a message published to a quiet queue while another
// is busy comes with the script after next (the one in flight when the
// invalidation arrives was sent before it), not after the busy queue drains.
func TestBusyQueueDoesNotStarveQuiet(t *testing.T) {
	// The bound counts pops, not time, but it holds only while every
	// command this channel sends is served in turn: on the shared server
	// another test's CLIENT PAUSE (or load) can stall the publish or the
	// pops. A private redis-server keeps the count this test's own.
	redisURL(t)
	srv := startPrivateRedis(t, false)
	t.Setenv("KOMBU_TEST_REDIS_URL", srv.url)
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	const prefetch, busyN, before = 10, 3000, 50
	reqs := make([]PublishRequest, busyN)
	for i := range reqs {
		reqs[i] = PublishRequest{Message: textMsg("busy"), RoutingKey: "busy"}
	}
	if err := ch.PublishBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(ctx, prefetch); err != nil {
		t.Fatal(err)
	}
	// Hub goroutine only, read once result is sent.
	busy, after, published := 0, 0, false
	result := make(chan int, 1)
	cb := func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		switch string(m.Body) {
		case "busy":
			busy++
			if published {
				after++
			}
			if busy == before {
				// Blocks the hub for the LPUSH: the busy deliveries counted
				// from now on all come after the quiet message was there.
				if err := ch.Publish(context.Background(), textMsg("quiet"), "", "quiet", transport.PublishOptions{}); err != nil {
					t.Error(err)
				}
				published = true
			}
			if busy == busyN {
				result <- -1
			}
		case "quiet":
			result <- after
		}
	}
	queues := []string{"busy", "quiet"}
	for i := 0; i < 30; i++ {
		queues = append(queues, fmt.Sprintf("idle%02d", i))
	}
	for _, q := range queues {
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, cb); err != nil {
			t.Fatal(err)
		}
	}
	got := waitFor(t, result, "the quiet queue's message")
	if got < 0 || got > 2*prefetch {
		t.Errorf("the quiet queue's message came after %d busy deliveries (-1: after all %d); want at most %d",
			got, busyN, 2*prefetch)
	}
}

// Close and Recover give unacknowledged messages back, marked redelivered;
// a no-ack consumer leaves no records.
func TestRecoverAndCloseRestore(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	for i := 0; i < 5; i++ {
		ch.Publish(ctx, textMsg(fmt.Sprint(i)), "", "rq", transport.PublishOptions{})
	}
	ch.Qos(ctx, 5)
	out := consumeN(t, ch, "rq", false, false)
	first := map[string]bool{}
	for i := 0; i < 5; i++ {
		m := waitFor(t, out, "delivery")
		if m.DeliveryInfo.Redelivered {
			t.Error("fresh message marked redelivered")
		}
		first[m.DeliveryInfo.DeliveryTag] = true
	}
	if err := ch.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		m := waitFor(t, out, "redelivery")
		if !m.DeliveryInfo.Redelivered || !first[m.DeliveryInfo.DeliveryTag] {
			t.Errorf("redelivery %+v", m.DeliveryInfo)
		}
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	// Close restored them again: all five are back in the list.
	if n, _ := e.rdb.LLen(ctx, e.prefix+"rq").Result(); n != 5 {
		t.Errorf("after close the queue holds %d, want 5", n)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d records left after close", n)
	}
	ch2 := e.channel()
	out2 := consumeN(t, ch2, "rq", true, false)
	for i := 0; i < 5; i++ {
		waitFor(t, out2, "no-ack delivery")
	}
	ch2.Close()
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("no-ack consumer left %d records", n)
	}
}

// A message that is not an envelope is delivered with Err set, never
// dropped, and can be acknowledged.
func TestMalformedDelivered(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	e.rdb.LPush(ctx, e.prefix+"bad", "not json")
	ch := e.channel()
	out := consumeN(t, ch, "bad", false, true)
	m := waitFor(t, out, "delivery")
	if m.Err == nil || !errors.Is(m.Err, transport.ErrBadEnvelope) || string(m.Body) != "not json" {
		t.Errorf("got %+v", m)
	}
	ch.Close()
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d records left", n)
	}
}

// Fanout through PUB/SUB: a consumer of a queue bound to a fanout
// exchange gets what is published after it subscribed (item 9, 13).
func TestFanoutConsume(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	fx := bindFanout(t, ch, "fq1")
	out := consumeN(t, ch, "fq1", false, true)
	waitClients(t, e, "psubscribe")
	for i := 0; i < 3; i++ {
		if err := ch.Publish(ctx, textMsg(fmt.Sprint(i)), fx, "", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		m := waitFor(t, out, "fanout delivery")
		if string(m.Body) != fmt.Sprint(i) || m.DeliveryInfo.Queue != "fq1" || m.DeliveryInfo.Exchange != fx {
			t.Errorf("got %q %+v", m.Body, m.DeliveryInfo)
		}
	}
	ch.Close()
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d fanout records left after acks", n)
	}
}

// The visibility timeout brings back a message whose consumer died.
func TestVisibilityTimeoutRestore(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 1, "unacked_restore_interval": "0.2",
		"unacked_restore_throttle": 1})
	ctx := ctxT(t)
	ch := e.channel()
	ch.Publish(ctx, textMsg("v"), "", "vq", transport.PublishOptions{})
	// Take it the way a dead consumer would: popped and recorded, never acked.
	if _, _, err := e.conn.pop(ctx, []string{e.prefix + "vq"}, 1, true); err != nil {
		t.Fatal(err)
	}
	out := consumeN(t, ch, "vq", false, true)
	m := waitFor(t, out, "restored delivery")
	if !m.DeliveryInfo.Redelivered || string(m.Body) != "v" {
		t.Errorf("got %+v", m)
	}
}

// Item 20: closing while a BRPOP is in flight loses nothing: a message
// that arrives at that moment is either delivered (and restored by the
// close) or given back; it ends up in its list, with no record left.
func TestCloseWhileInFlight(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	for i := 0; i < 20; i++ {
		q := fmt.Sprintf("cq%d", i)
		ch := e.channel()
		consumeN(t, ch, q, false, false)
		waitConsumeSocket(t, e, ch.st, rWait)
		e.rdb.LPush(ctx, e.prefix+q, fmt.Sprintf(`{"body": "%d", "properties": {"delivery_tag": "tag-%d"}}`, i, i))
		if err := ch.Close(); err != nil {
			t.Fatal(err)
		}
		if n, _ := e.rdb.LLen(ctx, e.prefix+q).Result(); n != 1 {
			t.Fatalf("round %d: the list holds %d after close, want 1", i, n)
		}
		if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
			t.Fatalf("round %d: %d records left", i, n)
		}
	}
}

// Kombu's close deletes the auto-delete queues bound to fanout exchanges;
// a channel that consumes only fanout queues opens no BRPOP socket (item
// 14).
func TestCloseDeletesAutoDeleteFanoutQueue(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	fx := uniq("adfx")
	ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout})
	ch.DeclareQueue(ctx, transport.Queue{Name: "adq", AutoDelete: true})
	ch.BindQueue(ctx, transport.Binding{Queue: "adq", Exchange: fx})
	if n, _ := e.rdb.SCard(ctx, e.prefix+"_kombu.binding."+fx).Result(); n != 1 {
		t.Fatalf("binding members %d", n)
	}
	consumeN(t, ch, "adq", false, true)
	waitSubscribed(t, e, ch, 1)
	var brpop *hubSock
	e.h.Call(ctx, func() { brpop = ch.st.cons })
	if brpop != nil {
		t.Error("a fanout-only channel opened a BRPOP socket")
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.SCard(ctx, e.prefix+"_kombu.binding."+fx).Result(); n != 0 {
		t.Errorf("auto-delete fanout queue's binding survived close (%d)", n)
	}
}

// PublishBatch routes like Publish: default exchange, direct and topic
// bindings (read once), fanout (PUBLISH), the dead-letter queue for the
// unroutable; every stored copy has its own tag.
func TestPublishBatch(t *testing.T) {
	e := newEnv(t, map[string]any{"deadletter_queue": "dlq"})
	ctx := ctxT(t)
	ch := e.channel()
	ch.DeclareExchange(ctx, transport.Exchange{Name: "bdx", Type: transport.Direct})
	ch.DeclareExchange(ctx, transport.Exchange{Name: "btx", Type: transport.Topic})
	fx := uniq("bfx")
	ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout})
	ch.BindQueue(ctx, transport.Binding{Queue: "b1", Exchange: "bdx", RoutingKey: "k"})
	ch.BindQueue(ctx, transport.Binding{Queue: "b2", Exchange: "bdx", RoutingKey: "k"})
	ch.BindQueue(ctx, transport.Binding{Queue: "b3", Exchange: "btx", RoutingKey: "a.#"})
	ch.BindQueue(ctx, transport.Binding{Queue: "bf", Exchange: fx})
	fout := consumeN(t, ch, "bf", false, true)
	waitSubscribed(t, e, ch, 1)
	hi := textMsg("hi")
	hi.Properties.Priority = 9
	err := ch.PublishBatch(ctx, []PublishRequest{
		{Message: textMsg("plain"), RoutingKey: "b0"},
		{Message: textMsg("direct"), Exchange: "bdx", RoutingKey: "k"},
		{Message: textMsg("topic"), Exchange: "btx", RoutingKey: "a.b.c"},
		{Message: textMsg("fan"), Exchange: fx},
		{Message: textMsg("lost"), Exchange: "bdx", RoutingKey: "nobody"},
		{Message: hi, RoutingKey: "b0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for key, want := range map[string]string{"b0": "plain", "b0\x06\x169": "hi", "b1": "direct", "b2": "direct",
		"b3": "topic", "dlq": "lost"} {
		msgs := lrange(t, e, key)
		if len(msgs) != 1 || string(msgs[0].Body) != want {
			t.Errorf("%q: %d messages, want one %q", key, len(msgs), want)
			continue
		}
		if tag := msgs[0].DeliveryInfo.DeliveryTag; tags[tag] || !uuidRE.MatchString(tag) {
			t.Errorf("tag %q reused or not a uuid", tag)
		} else {
			tags[tag] = true
		}
	}
	if m := waitFor(t, fout, "fanout from PublishBatch"); string(m.Body) != "fan" {
		t.Errorf("fanout got %q", m.Body)
	}
}

// Both hub sockets killed by the server (CLIENT KILL): each reconnects by
// itself, the LISTEN socket subscribes again, and consuming goes on.
func TestHubSocketsKilled(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	fx := uniq("kfx")
	ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout})
	ch.BindQueue(ctx, transport.Binding{Queue: "kfq", Exchange: fx})
	lout := consumeN(t, ch, "klq", false, true)
	fout := consumeN(t, ch, "kfq", false, true)
	waitSubscribed(t, e, ch, 1)
	for round := 0; round < 3; round++ {
		var ids []int64
		e.h.Call(ctx, func() {
			for _, s := range []*hubSock{ch.st.cons, ch.st.listen} {
				if s != nil && s.ready {
					ids = append(ids, s.clientID)
				}
			}
		})
		if len(ids) != 2 {
			t.Fatalf("round %d: %d hub sockets ready, want 2", round, len(ids))
		}
		for _, id := range ids {
			if err := e.rdb.ClientKillByFilter(ctx, "ID", fmt.Sprint(id)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// The list socket: a message pushed meanwhile is consumed after the
		// reconnect.
		ch.Publish(ctx, textMsg(fmt.Sprint("list", round)), "", "klq", transport.PublishOptions{})
		if m := waitFor(t, lout, "list delivery after the kill"); string(m.Body) != fmt.Sprint("list", round) {
			t.Errorf("got %q", m.Body)
		}
		// The fanout socket: wait for the new subscription, then publish.
		deadline := time.Now().Add(20 * time.Second)
		for {
			var ok bool
			e.h.Call(ctx, func() {
				s := ch.st.listen
				ok = s != nil && s.ready && s.clientID != ids[1] && ch.st.subscribed > 0
			})
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the LISTEN socket did not come back")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ch.Publish(ctx, textMsg(fmt.Sprint("fan", round)), fx, "", transport.PublishOptions{})
		if m := waitFor(t, fout, "fanout delivery after the kill"); string(m.Body) != fmt.Sprint("fan", round) {
			t.Errorf("got %q", m.Body)
		}
	}
}

// A callback that panics (the hub recovers it and goes on) does not strand
// the rest of its batch: they are delivered in the next turn.
func TestPanicInCallbackKeepsBatch(t *testing.T) {
	raw := redisURL(t)
	prefix := uniq("pan") + ":"
	tr, err := New(configFromURL(t, raw, map[string]any{"global_keyprefix": prefix}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Options{OnError: func(error) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(runCtx) }()
	defer func() { cancel(); <-done; h.Close() }()
	ctx := ctxT(t)
	rdb := tr.o.newClient()
	defer func() { // last: after the connection restored what it held
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	}()
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, _ := conn.Channel(ctx)
	ch := c.(*Channel)
	for i := 0; i < 10; i++ {
		ch.Publish(ctx, textMsg(fmt.Sprint(i)), "", "pq", transport.PublishOptions{})
	}
	out := make(chan string, 20)
	_, err = ch.Consume(ctx, transport.ConsumeOptions{Queue: "pq"}, func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		out <- string(m.Body)
		if string(m.Body) == "3" {
			panic("callback failure")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 10 {
		seen[waitFor(t, out, "delivery after a panic")] = true
	}
}

// Channel.Close waits for its restores on the caller's goroutine: while
// the executor is held up (Redis slow or away), the hub goes on serving
// everything else, and Close returns once the restore has run, with the
// message back in its queue.
func TestCloseWaitsOffTheHub(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	if err := ch.Publish(ctx, textMsg("held"), "", "cwq", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	out := consumeN(t, ch, "cwq", false, false)
	waitFor(t, out, "the unacknowledged delivery")
	release := holdExecutor(t, e)
	closed := make(chan error, 1)
	go func() { closed <- ch.Close() }()
	// Once the shutdown running on the hub has queued work behind the held
	// job, a Call posted now runs after it, and completes only if the hub
	// is not held waiting for the executor.
	waitQueued(t, e, "Close to queue work on the executor")
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.h.Call(cctx, func() {}); err != nil {
		t.Fatalf("the hub was held while Close waited for the executor: %v", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before its restore could run", err)
	default:
	}
	release()
	if err := waitFor(t, closed, "Close"); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.LLen(ctx, e.prefix+"cwq").Result(); n != 1 {
		t.Errorf("cwq holds %d messages after Close, want the restored one", n)
	}
}

// A fanout message is recorded for the consumer in line when it arrives;
// if a no-ack consumer takes it by the time the record is written (the
// other was cancelled meanwhile), the record is dropped, not left to the
// visibility timeout to deliver the message a second time.
func TestFanoutRecordDroppedForNoAckTaker(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	fx := bindFanout(t, ch, "fnq")
	acking, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "fnq"}, func(m *transport.Message) {
		t.Errorf("the cancelled consumer got %q", m.Body)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitClients(t, e, "psubscribe")
	release := holdExecutor(t, e)
	if err := ch.Publish(ctx, textMsg("fan"), fx, "", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, e, "the fanout message's record to be queued")
	if err := ch.Cancel(ctx, acking); err != nil {
		t.Fatal(err)
	}
	out := consumeN(t, ch, "fnq", true, false)
	release()
	m := waitFor(t, out, "the delivery to the no-ack consumer")
	if string(m.Body) != "fan" {
		t.Fatalf("got %q", m.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := e.rdb.HLen(ctx, e.prefix+"unacked").Result()
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d unacked records left for a message a no-ack consumer took (%v)", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdExecutor blocks the connection's executor until release is called
// (at the latest when the test ends, so that a failing test does not hang
// in Close): work queued meanwhile waits behind the held job.
func holdExecutor(t *testing.T, e *env) (release func()) {
	t.Helper()
	s, r := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(r) }) }
	t.Cleanup(release)
	e.conn.exec.do(func(context.Context) { close(s); <-r })
	waitFor(t, s, "the executor to take the held job")
	return release
}

// bindFanout declares a new fanout exchange and queue and binds them; it
// returns the exchange's name.
func bindFanout(t *testing.T, ch *Channel, queue string) string {
	t.Helper()
	ctx := ctxT(t)
	fx := uniq("fx")
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: queue}); err != nil {
		t.Fatal(err)
	}
	if err := ch.BindQueue(ctx, transport.Binding{Queue: queue, Exchange: fx}); err != nil {
		t.Fatal(err)
	}
	return fx
}

// A no-ack consumer's callback that panics (the hub recovers it) has still
// been handed the message: its unacked record goes before the callback
// runs, or the visibility timeout would deliver the message again.
func TestNoAckPanicLeavesNoRecord(t *testing.T) {
	var panics atomic.Int32
	e := newEnvHub(t, nil, hub.Options{OnError: func(err error) error { panics.Add(1); return nil }})
	ctx := ctxT(t)
	ch := e.channel()
	for _, body := range []string{"list", "fan"} {
		if body == "fan" {
			fx := bindFanout(t, ch, "npf")
			ch.Consume(ctx, transport.ConsumeOptions{Queue: "npf", NoAck: true}, func(*transport.Message) { panic("callback failure") })
			waitClients(t, e, "psubscribe")
			ch.Publish(ctx, textMsg(body), fx, "", transport.PublishOptions{})
		} else {
			ch.Publish(ctx, textMsg(body), "", "npq", transport.PublishOptions{})
			ch.Consume(ctx, transport.ConsumeOptions{Queue: "npq", NoAck: true}, func(*transport.Message) { panic("callback failure") })
		}
		want := int32(1)
		if body == "fan" {
			want = 2
		}
		for deadline := time.Now().Add(10 * time.Second); panics.Load() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the no-ack consumer was never called", body)
			}
		}
		waitEmpty(t, e)
	}
}

// Fanout records are scored like the pop script's: whole seconds.
func TestFanoutRecordScoreWholeSeconds(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	fx := bindFanout(t, ch, "fsq")
	out := consumeN(t, ch, "fsq", false, false)
	waitClients(t, e, "psubscribe")
	if err := ch.Publish(ctx, textMsg("f"), fx, "", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m := waitFor(t, out, "fanout delivery")
	sc, err := e.rdb.ZScore(ctx, e.prefix+"unacked_index", m.DeliveryInfo.DeliveryTag).Result()
	if err != nil || sc != math.Trunc(sc) || time.Since(time.Unix(int64(sc), 0)) > time.Minute {
		t.Errorf("fanout record score %v (%v), want whole seconds, now or just after", sc, err)
	}
}

// Fanout messages recorded in one batch: a callback that panics on one of
// them does not hold back the others until the visibility timeout.
func TestFanoutPanicDeliversRestOfBatch(t *testing.T) {
	e := newEnvHub(t, nil, hub.Options{OnError: func(error) error { return nil }})
	ctx := ctxT(t)
	ch := e.channel()
	fx := bindFanout(t, ch, "fpq")
	got := make(chan string, 10)
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "fpq"}, func(m *transport.Message) {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		got <- string(m.Body)
		if string(m.Body) == "0" {
			panic("callback failure")
		}
	}); err != nil {
		t.Fatal(err)
	}
	waitClients(t, e, "psubscribe")
	release := holdExecutor(t, e)
	// Published while the hub is busy, the three are read in one burst and
	// recorded in one batch.
	var perr error
	if err := e.h.Call(ctx, func() {
		for i := 0; i < 3 && perr == nil; i++ {
			perr = ch.Publish(ctx, textMsg(fmt.Sprint(i)), fx, "", transport.PublishOptions{})
		}
		// A PUBLISH's reply may reach us before Redis wrote the message to
		// the subscriber's socket (the two are written in the same event
		// loop turn, in no set order): still holding the hub, give the
		// last one time to arrive, or the hub may read it in a second burst.
		time.Sleep(100 * time.Millisecond)
	}); err != nil || perr != nil {
		t.Fatal(err, perr)
	}
	queued := waitQueued(t, e, "the fanout records to be queued")
	if queued != 1 {
		t.Fatalf("%d record batches queued, want the three in one", queued)
	}
	release()
	var bodies []string
	for len(bodies) < 3 {
		bodies = append(bodies, waitFor(t, got, "the fanout deliveries"))
	}
	if strings.Join(bodies, ",") != "0,1,2" {
		t.Errorf("delivered %v, want 0,1,2", bodies)
	}
}

// waitQueued waits until work is queued on the executor behind a held job
// (holdExecutor), and returns how many jobs are.
func waitQueued(t *testing.T, e *env, what string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		e.conn.exec.mu.Lock()
		n := len(e.conn.exec.jobs)
		e.conn.exec.mu.Unlock()
		if n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
