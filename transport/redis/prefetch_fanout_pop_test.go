package redis

import (
	"context"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// A channel that consumes a list queue and a fanout queue with Qos(1): a
// fanout message read while a pop script is in flight must wait, since the
// pop holds the window's only slot. CLIENT PAUSE holds the pop on the
// server, so the test runs on a private redis-server (the pause would stall
// every other test on a shared one).
func TestPrefetchWithFanoutAndPop(t *testing.T) {
	redisURL(t)
	srv := startPrivateRedis(t, false)
	t.Setenv("KOMBU_TEST_REDIS_URL", srv.url)
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	if err := ch.Qos(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fx := uniq("fx")
	ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout})
	ch.DeclareQueue(ctx, transport.Queue{Name: "fq"})
	if err := ch.BindQueue(ctx, transport.Binding{Queue: "fq", Exchange: fx}); err != nil {
		t.Fatal(err)
	}
	got := make(chan *transport.Message, 10)
	cb := func(m *transport.Message) { got <- m } // never acked
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "fq"}, cb); err != nil {
		t.Fatal(err)
	}
	waitClients(t, e, "psubscribe")
	// The consume socket is connected (and waiting on an empty queue)
	// before the pause, which would hold its handshake too.
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: uniq("idle")}, cb); err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, ch.st, rWait)
	if err := ch.Publish(ctx, textMsg("list"), "", "lq", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	// Hold write commands (the pop script) on the server.
	if err := e.rdb.Do(ctx, "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	defer e.rdb.Do(context.Background(), "CLIENT", "UNPAUSE")
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "lq"}, cb); err != nil {
		t.Fatal(err)
	}
	st := ch.st
	// Wait until the consume script is in flight (the wait was cut short
	// by CLIENT UNBLOCK, which the pause lets through).
	waitConsumeSocket(t, e, st, rScript)
	// The LISTEN socket reads a pmessage now (what PUBLISH would bring;
	// PUBLISH itself is paused by CLIENT PAUSE WRITE).
	env, _ := encodeEnvelope(&transport.Message{Body: []byte("fan"), ContentType: "text/plain", ContentEncoding: "utf-8",
		DeliveryInfo: transport.DeliveryInfo{Exchange: fx, DeliveryTag: uniq("tag")}}, "base64")
	e.h.Call(ctx, func() {
		st.onFanout([]byte(e.prefix+st.o.fanoutTopic(fx, "")), env)
		st.afterRead(st.listen)
	})
	e.rdb.Do(ctx, "CLIENT", "UNPAUSE")
	var first *transport.Message
	n := 0
	timeout := time.After(3 * time.Second)
loop:
	for {
		select {
		case m := <-got:
			n++
			if first == nil {
				first = m
			}
			t.Logf("delivered %q", m.Body)
		case <-timeout:
			break loop
		}
	}
	if n != 1 {
		t.Fatalf("%d unacked deliveries with Qos(1), want 1", n)
	}
	// Acking it frees the slot: the other message comes.
	ch.Ack(first.DeliveryInfo.DeliveryTag)
	select {
	case m := <-got:
		if string(m.Body) == string(first.Body) {
			t.Errorf("%q delivered twice", m.Body)
		}
	case <-time.After(10 * time.Second):
		t.Error("the second message was not delivered after the ack")
	}
	ch.Close()
}

// waitConsumeSocket waits until the consume socket's oldest command in
// flight is of the given kind.
func waitConsumeSocket(t *testing.T, e *env, st *store, kind replyKind) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var ok bool
		e.h.Call(context.Background(), func() { ok = st.cons != nil && len(st.cons.exp) > 0 && st.cons.exp[0].kind == kind })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no command of kind %d in flight on the consume socket", kind)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
