package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// wait bounds how long a test waits for a broker event (not a speed
// assertion: only a hang fails on it).
const wait = 20 * time.Second

// collector receives deliveries on the hub and hands them to the test.
type collector struct {
	ch     chan *transport.Message
	onHub  func(*transport.Message) // optional, runs on the hub first
	mu     sync.Mutex
	hubGor bool
}

func newCollector() *collector { return &collector{ch: make(chan *transport.Message, 10000)} }

func (c *collector) fn(m *transport.Message) {
	if c.onHub != nil {
		c.onHub(m)
	}
	c.ch <- m
}

func (c *collector) next(tb testing.TB) *transport.Message {
	tb.Helper()
	select {
	case m := <-c.ch:
		return m
	case <-time.After(wait):
		tb.Fatal("no delivery")
		return nil
	}
}

func msg(body string) *transport.Message {
	return &transport.Message{Body: []byte(body), ContentType: "text/plain", ContentEncoding: "utf-8"}
}

func mustPublish(tb testing.TB, ch transport.Channel, m *transport.Message, ex, rk string) {
	tb.Helper()
	if err := ch.Publish(ctxT(tb), m, ex, rk, transport.PublishOptions{}); err != nil {
		tb.Fatalf("Publish: %v", err)
	}
}

func queueDepth(tb testing.TB, ch transport.Channel, q string) transport.QueueInfo {
	tb.Helper()
	info, err := ch.DeclareQueue(ctxT(tb), transport.Queue{Name: q, Passive: true})
	if err != nil {
		tb.Fatalf("passive declare %s: %v", q, err)
	}
	return info
}

// waitDepth polls the ready count until it is n (the broker settles acks
// asynchronously).
func waitDepth(tb testing.TB, ch transport.Channel, q string, n int) {
	tb.Helper()
	deadline := time.Now().Add(wait)
	for {
		info := queueDepth(tb, ch, q)
		if info.Messages == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("queue %s holds %d ready messages, want %d", q, info.Messages, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublishConsumeProperties(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	ts := time.Unix(1700000123, 0)
	m := &transport.Message{
		Body: []byte(`{"hello": "world"}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"task": "x.y", "n": 42, "f": 2.5, "ok": true, "none": nil,
			"list": []any{1, "a", map[string]any{"k": "v"}}, "nested": map[string]any{"deep": []any{}}},
		Properties: transport.Properties{CorrelationID: "corr-1", ReplyTo: "reply-q", MessageID: "id-1",
			Type: "kind", AppID: "app", UserID: "guest", Timestamp: ts, DeliveryMode: 1,
			Expiration: "60000", Priority: 3},
	}
	mustPublish(t, ch, m, "", q)
	col := newCollector()
	var onHub bool
	var mu sync.Mutex
	col.onHub = func(*transport.Message) { mu.Lock(); onHub = true; mu.Unlock() }
	tag, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn)
	if err != nil {
		t.Fatal(err)
	}
	got := col.next(t)
	if string(got.Body) != string(m.Body) || got.ContentType != "application/json" || got.ContentEncoding != "utf-8" {
		t.Errorf("body/content: %q %q %q", got.Body, got.ContentType, got.ContentEncoding)
	}
	p := got.Properties
	if p.CorrelationID != "corr-1" || p.ReplyTo != "reply-q" || p.MessageID != "id-1" || p.Type != "kind" ||
		p.AppID != "app" || p.UserID != "guest" || !p.Timestamp.Equal(ts) || p.DeliveryMode != 1 ||
		p.Expiration != "60000" || p.Priority != 3 {
		t.Errorf("properties: %+v", p)
	}
	wantHeaders := map[string]any{"task": "x.y", "n": int64(42), "f": 2.5, "ok": true, "none": nil,
		"list": []any{int64(1), "a", map[string]any{"k": "v"}}, "nested": map[string]any{"deep": []any{}}}
	if fmt.Sprint(got.Headers) != fmt.Sprint(wantHeaders) {
		t.Errorf("headers:\n got %#v\nwant %#v", got.Headers, wantHeaders)
	}
	d := got.DeliveryInfo
	if d.ConsumerTag != tag || d.RoutingKey != q || d.Exchange != "" || d.Queue != q || d.Redelivered || d.DeliveryTag != "1" {
		t.Errorf("delivery info: %+v (tag %s)", d, tag)
	}
	mu.Lock()
	if !onHub {
		t.Error("callback did not run")
	}
	mu.Unlock()
	if err := ch.Ack(d.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, ch, q, 0)
	if err := ch.Cancel(ctxT(t), tag); err != nil {
		t.Fatal(err)
	}
	if info := queueDepth(t, ch, q); info.Consumers != 0 {
		t.Errorf("consumers after cancel: %d", info.Consumers)
	}
}

func TestGetAckReject(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true})
	if _, err := ch.Get(ctxT(t), q, false); !errors.Is(err, transport.ErrEmpty) {
		t.Fatalf("Get on empty queue: %v", err)
	}
	for i := range 3 {
		mustPublish(t, ch, msg(strconv.Itoa(i)), "", q)
	}
	m0, err := ch.Get(ctxT(t), q, false)
	if err != nil || string(m0.Body) != "0" || m0.DeliveryInfo.Queue != q {
		t.Fatalf("Get: %v %+v", err, m0)
	}
	if err := ch.Reject(m0.DeliveryInfo.DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	again, err := ch.Get(ctxT(t), q, false)
	if err != nil || string(again.Body) != "0" || !again.DeliveryInfo.Redelivered {
		t.Fatalf("requeued message: %v %+v", err, again)
	}
	if again.DeliveryInfo.DeliveryTag == m0.DeliveryInfo.DeliveryTag {
		t.Error("a redelivery must get a new tag")
	}
	if err := ch.Reject(again.DeliveryInfo.DeliveryTag, false); err != nil {
		t.Fatal(err)
	}
	m1, err := ch.Get(ctxT(t), q, false)
	if err != nil || string(m1.Body) != "1" {
		t.Fatalf("Get 1: %v %+v", err, m1)
	}
	if err := ch.Ack(m1.DeliveryInfo.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	// A double ack is dropped instead of costing the channel a 406.
	if err := ch.Ack(m1.DeliveryInfo.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	m2, err := ch.Get(ctxT(t), q, true)
	if err != nil || string(m2.Body) != "2" {
		t.Fatalf("Get 2 no-ack: %v %+v", err, m2)
	}
	if _, err := ch.Get(ctxT(t), q, false); !errors.Is(err, transport.ErrEmpty) {
		t.Fatalf("queue should be empty: %v", err)
	}
	if err := ch.Ack("not-a-tag"); !errors.Is(err, transport.ErrUnknownDeliveryTag) {
		t.Errorf("bad tag: %v", err)
	}
	if info := queueDepth(t, ch, q); info.Messages != 0 {
		t.Errorf("ready = %d", info.Messages)
	}
}

// TestDeclareErrorsKeepChannel: refused declarations map to the sentinels
// and neither the channel nor its consumer notices.
func TestDeclareErrorsKeepChannel(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{"x-max-priority": 5}})
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q, NoAck: true}, col.fn); err != nil {
		t.Fatal(err)
	}
	_, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: uniq("missing"), Passive: true})
	var be *transport.BrokerError
	if !errors.Is(err, transport.ErrNotFound) || !transport.IsChannelError(err) || !errors.As(err, &be) || be.Code != 404 {
		t.Fatalf("passive declare of a missing queue: %v", err)
	}
	err = ch.DeclareExchange(ctxT(t), transport.Exchange{Name: uniq("missing"), Type: "topic", Passive: true})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("passive declare of a missing exchange: %v", err)
	}
	_, err = ch.DeclareQueue(ctxT(t), transport.Queue{Name: q, AutoDelete: true, Arguments: map[string]any{"x-max-priority": 9}})
	if !errors.Is(err, transport.ErrNotEquivalent) || !errors.As(err, &be) || be.Code != 406 {
		t.Fatalf("inequivalent redeclare: %v", err)
	}
	// Same arguments with another integer width are equivalent.
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: q, AutoDelete: true,
		Arguments: map[string]any{"x-max-priority": int64(5)}}); err != nil {
		t.Fatalf("equivalent redeclare: %v", err)
	}
	mustPublish(t, ch, msg("still alive"), "", q)
	if got := col.next(t); string(got.Body) != "still alive" {
		t.Fatalf("got %q", got.Body)
	}
	if _, err := ch.PurgeQueue(ctxT(t), uniq("missing")); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("purge of a missing queue: %v", err)
	}
}

// TestChannelErrorReopens: an error that closes the AMQP channel itself (a
// consume of a missing queue) is returned, and the channel is reopened with
// its consumer, so the next calls and deliveries work.
func TestChannelErrorReopens(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	if err := ch.Qos(ctxT(t), 5); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	// An auto-delete queue goes with the channel of its last consumer; the
	// reopen declares it again (with its binding) before consuming.
	ex := uniq("ad-ex")
	if err := ch.DeclareExchange(ctxT(t), transport.Exchange{Name: ex, Type: "fanout"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.channel().DeleteExchange(cleanupCtx(t), ex, false) })
	adq := e.queue(ch, transport.Queue{AutoDelete: true})
	if err := ch.BindQueue(ctxT(t), transport.Binding{Queue: adq, Exchange: ex}); err != nil {
		t.Fatal(err)
	}
	adCol := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: adq, NoAck: true}, adCol.fn); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, ch, msg("before"), "", q)
	before := col.next(t) // held unacked across the reopen
	_, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: uniq("missing")}, col.fn)
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("consume of a missing queue: %v", err)
	}
	if _, err := ch.Get(ctxT(t), uniq("missing"), false); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("get of a missing queue: %v", err)
	}
	// The old delivery's ack is dropped: the broker requeued it when the
	// channel closed, and it comes back redelivered with a fresh tag (maybe
	// more than once: each reopen requeues it again).
	if err := ch.Ack(before.DeliveryInfo.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, ch, msg("after"), "", q)
	oldTag, _ := strconv.ParseUint(before.DeliveryInfo.DeliveryTag, 10, 64)
	var after *transport.Message
	redelivered := 0
	for after == nil {
		m := col.next(t)
		tag, _ := strconv.ParseUint(m.DeliveryInfo.DeliveryTag, 10, 64)
		if tag <= oldTag {
			t.Fatalf("tags must grow across reopens: %d then %d", oldTag, tag)
		}
		oldTag = tag
		switch string(m.Body) {
		case "before":
			if !m.DeliveryInfo.Redelivered {
				t.Fatal("the requeued message is not marked redelivered")
			}
			redelivered++
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		case "after":
			after = m
		}
	}
	if redelivered == 0 {
		t.Fatal("the unacked message was not redelivered after the reopen")
	}
	ch.Ack(after.DeliveryInfo.DeliveryTag)
	waitDepth(t, ch, q, 0)
	if info := queueDepth(t, ch, q); info.Consumers != 1 {
		t.Errorf("consumers = %d, want 1", info.Consumers)
	}
	mustPublish(t, ch, msg("fan"), ex, "")
	if m := adCol.next(t); string(m.Body) != "fan" {
		t.Fatalf("auto-delete queue after reopen: %q", m.Body)
	}
}

func TestConfirms(t *testing.T) {
	e := dial(t, map[string]any{"confirm_publish": true})
	if !e.tr.Info().Confirms {
		t.Fatal("Info().Confirms")
	}
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{
		"x-max-length": 1, "x-overflow": "reject-publish"}})
	if err := ch.Publish(ctxT(t), msg("1"), "", q, transport.PublishOptions{}); err != nil {
		t.Fatalf("confirmed publish: %v", err)
	}
	// The queue is full and refuses publishes: the broker nacks.
	if err := ch.Publish(ctxT(t), msg("2"), "", q, transport.PublishOptions{}); !errors.Is(err, ErrNacked) {
		t.Fatalf("publish into a full reject-publish queue: %v, want ErrNacked", err)
	}
	// A publish to a missing exchange closes the channel: no confirmation.
	err := ch.Publish(ctxT(t), msg("x"), uniq("missing"), "k", transport.PublishOptions{})
	if err == nil || errors.Is(err, ErrNacked) {
		t.Fatalf("publish to a missing exchange: %v", err)
	}
	// The channel reopens for the next publish.
	if _, err := ch.PurgeQueue(ctxT(t), q); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctxT(t), msg("3"), "", q, transport.PublishOptions{}); err != nil {
		t.Fatalf("publish after the channel error: %v", err)
	}
	// Concurrent confirmed publishers share the executor.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	q2 := e.queue(ch, transport.Queue{AutoDelete: true})
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				if err := ch.Publish(context.Background(), msg(fmt.Sprint(i, j)), "", q2, transport.PublishOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if info := queueDepth(t, ch, q2); info.Messages != 200 {
		t.Errorf("confirmed 200, queue holds %d", info.Messages)
	}
}

func TestQosPrefetch(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true})
	for i := range 10 {
		mustPublish(t, ch, msg(strconv.Itoa(i)), "", q)
	}
	if err := ch.Qos(ctxT(t), 3); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	var held []*transport.Message
	for range 3 {
		held = append(held, col.next(t))
	}
	waitDepth(t, ch, q, 7) // the window holds three unacked, the rest waits
	for _, m := range held {
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}
	for range 7 {
		ch.Ack(col.next(t).DeliveryInfo.DeliveryTag)
	}
	waitDepth(t, ch, q, 0)
	if err := ch.Qos(ctxT(t), -1); err == nil {
		t.Error("negative prefetch accepted")
	}
}

func TestRecoverRedelivers(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true})
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, ch, msg("r"), "", q)
	first := col.next(t)
	if err := ch.Recover(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	again := col.next(t)
	if string(again.Body) != "r" || !again.DeliveryInfo.Redelivered || again.DeliveryInfo.DeliveryTag == first.DeliveryInfo.DeliveryTag {
		t.Fatalf("recovered: %+v", again.DeliveryInfo)
	}
	ch.Ack(again.DeliveryInfo.DeliveryTag)
	waitDepth(t, ch, q, 0)
}

// TestCancelAndClose: no callback after Cancel returns; closing a channel
// gives its unacknowledged messages back.
func TestCancelAndClose(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	col := newCollector()
	tag, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn)
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, ch, msg("a"), "", q)
	col.next(t) // unacked
	if err := ch.Cancel(ctxT(t), tag); err != nil {
		t.Fatal(err)
	}
	if err := ch.Cancel(ctxT(t), "unknown-tag"); err != nil {
		t.Fatalf("unknown tag: %v", err)
	}
	mustPublish(t, ch, msg("b"), "", q)
	waitDepth(t, ch, q, 1)
	select {
	case m := <-col.ch:
		t.Fatalf("delivery after Cancel: %q", m.Body)
	default:
	}
	other := e.channel()
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, other, q, 2) // "a" came back
	if err := ch.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ch.Publish(ctxT(t), msg("x"), "", q, transport.PublishOptions{}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Publish on a closed channel: %v", err)
	}
	if err := ch.Ack("1"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Ack on a closed channel: %v", err)
	}
}

func TestDeletePurge(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	for range 3 {
		mustPublish(t, ch, msg("x"), "", q)
	}
	waitDepth(t, ch, q, 3)
	if _, err := ch.DeleteQueue(ctxT(t), q, false, true); !errors.Is(err, transport.ErrPreconditionFailed) {
		t.Fatalf("delete ifEmpty of a full queue: %v", err)
	}
	n, err := ch.PurgeQueue(ctxT(t), q)
	if err != nil || n != 3 {
		t.Fatalf("purge: %d %v", n, err)
	}
	mustPublish(t, ch, msg("y"), "", q)
	waitDepth(t, ch, q, 1)
	n, err = ch.DeleteQueue(ctxT(t), q, false, false)
	if err != nil || n != 1 {
		t.Fatalf("delete: %d %v", n, err)
	}
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: q, Passive: true}); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("deleted queue still there: %v", err)
	}
}

// TestBrokerCancelsConsumer: deleting a consumed queue cancels the
// consumer; the channel stays usable.
func TestBrokerCancelsConsumer(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	other := e.channel()
	if _, err := other.DeleteQueue(ctxT(t), q, false, false); err != nil {
		t.Fatal(err)
	}
	q2 := e.queue(ch, transport.Queue{AutoDelete: true})
	mustPublish(t, ch, msg("ok"), "", q2)
	if m, err := ch.Get(ctxT(t), q2, true); err != nil || string(m.Body) != "ok" {
		t.Fatalf("channel after a broker cancel: %v", err)
	}
}

func TestServerNamedAndExclusive(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	info, err := ch.DeclareQueue(ctxT(t), transport.Queue{Exclusive: true, AutoDelete: true})
	if err != nil || len(info.Name) < 8 || info.Name[:8] != "amq.gen-" {
		t.Fatalf("server-named queue: %+v %v", info, err)
	}
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: info.Name, Exclusive: true}, col.fn); err != nil {
		t.Fatal(err)
	}
	ch2 := e.channel()
	_, err = ch2.Consume(ctxT(t), transport.ConsumeOptions{Queue: info.Name}, col.fn)
	var be *transport.BrokerError
	if !errors.As(err, &be) || be.Code != 403 || !transport.IsChannelError(err) {
		t.Fatalf("second consumer on an exclusive consumer's queue: %v", err)
	}
	mustPublish(t, ch2, msg("x"), "", info.Name)
	if m := col.next(t); string(m.Body) != "x" {
		t.Fatalf("got %q", m.Body)
	}
}

func TestFlow(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	f := ch.(transport.Flower)
	if err := f.Flow(ctxT(t), true); err != nil {
		t.Fatalf("Flow(true): %v", err)
	}
	if err := f.Flow(ctxT(t), false); !errors.Is(err, transport.ErrUnsupported) {
		t.Fatalf("Flow(false): %v", err)
	}
	if e.conn.Err() != nil {
		t.Fatalf("connection hurt: %v", e.conn.Err())
	}
}

// TestManyAcksFromWorkers acknowledges out of order from several goroutines
// (the batching must never acknowledge a message still being worked on):
// every message is acked exactly once and the queue ends empty with the
// channel never closed by the broker.
func TestManyAcksFromWorkers(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	const n = 2000
	if err := ch.Qos(ctxT(t), 50); err != nil {
		t.Fatal(err)
	}
	work := make(chan *transport.Message, n)
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q},
		func(m *transport.Message) { work <- m }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				mu.Lock()
				seen[string(m.Body)]++
				mu.Unlock()
				if m.DeliveryInfo.Redelivered {
					t.Errorf("redelivered %s: a message was requeued", m.Body)
				}
				ch.Ack(m.DeliveryInfo.DeliveryTag)
			}
		}()
	}
	for i := range n {
		mustPublish(t, ch, msg(strconv.Itoa(i)), "", q)
	}
	waitDepth(t, ch, q, 0)
	deadline := time.Now().Add(wait)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("saw %d of %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// All acked: closing the channel must requeue nothing.
	other := e.channel()
	ch.Close()
	close(work)
	wg.Wait()
	waitDepth(t, other, q, 0)
	for b, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times", b, k)
		}
	}
}

func TestClosedConnection(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	if err := e.conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.conn.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if !errors.Is(e.conn.Err(), transport.ErrClosed) {
		t.Errorf("Err = %v", e.conn.Err())
	}
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: "x", Passive: true}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("declare after close: %v", err)
	}
	if _, err := e.conn.Channel(ctxT(t)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Channel after close: %v", err)
	}
	if err := e.conn.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestAuthAndVhostErrors(t *testing.T) {
	cfg := configFromURL(t, brokerURL(t))
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	bad := cfg
	bad.Password = "definitely-wrong"
	tr, _ := New(bad)
	_, err = tr.Dial(ctxT(t), h)
	var be *transport.BrokerError
	if !errors.As(err, &be) || be.Code != 403 || !transport.IsConnectionError(err) {
		t.Fatalf("wrong password: %v", err)
	}
	vh := cfg
	vh.VirtualHost = uniq("no-such-vhost")
	tr, _ = New(vh)
	_, err = tr.Dial(ctxT(t), h)
	if !errors.As(err, &be) || (be.Code != 530 && be.Code != 403) {
		t.Fatalf("unknown vhost: %v", err)
	}
}
