package transporttest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kombu-go/kombu/transport"
)

var cases = []testCase{
	{name: "DefaultExchange", run: testDefaultExchange},
	{name: "Direct", run: testDirect},
	{name: "Topic", need: needTopic, run: testTopic},
	{name: "TopicKombuWildcards", need: needTopic, run: testTopicWildcards},
	{name: "FanoutBroadcast", need: needFanoutBroadcast, run: testFanoutBroadcast},
	{name: "FanoutPubSub", need: needFanoutPubSub, run: testFanoutPubSub},
	{name: "Headers", need: needHeaders, run: testHeaders},
	{name: "GetEmpty", run: testGetEmpty},
	{name: "Purge", run: testPurge},
	{name: "PassiveMissing", run: testPassiveMissing},
	{name: "ExchangeNotEquivalent", need: needNotEquivalent, run: testNotEquivalent},
	{name: "Ack", run: testAck},
	{name: "RejectDrop", run: testRejectDrop},
	{name: "RejectRequeue", run: testRejectRequeue},
	{name: "Prefetch", run: testPrefetch},
	{name: "Cancel", run: testCancel},
	{name: "RestoreOnClose", need: needRestore, run: testRestoreOnClose},
	{name: "Priorities", need: needPriorities, run: testPriorities},
	{name: "Properties", run: testProperties},
	{name: "BinaryBody", run: testBinaryBody},
	{name: "ManyMessages", run: testMany},
	{name: "MandatoryReturn", need: needReturns, run: testReturn},
}

func needTopic(f Features) string {
	if !f.Topic {
		return "transport has no topic exchange"
	}
	return ""
}

func needFanoutBroadcast(f Features) string {
	if !f.Fanout || f.FanoutPubSub {
		return "transport has no store-and-forward fanout"
	}
	return ""
}

func needFanoutPubSub(f Features) string {
	if !f.Fanout || !f.FanoutPubSub {
		return "transport has no pub/sub fanout"
	}
	return ""
}

func needHeaders(f Features) string {
	if !f.Headers {
		return "transport has no headers exchange"
	}
	return ""
}

func needNotEquivalent(f Features) string {
	if !f.NotEquivalent {
		return "transport does not check exchange equivalence"
	}
	return ""
}

func needRestore(f Features) string {
	if !f.RestoreOnClose {
		return "transport does not restore unacknowledged messages on close"
	}
	return ""
}

func needPriorities(f Features) string {
	if f.Priorities == NoPriorities {
		return "transport ignores priorities"
	}
	return ""
}

func needReturns(f Features) string {
	if !f.Returns {
		return "transport does not return mandatory messages"
	}
	return ""
}

func testDefaultExchange(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	e.publish(ch, "", q, text("hello"))
	m := e.get(ch, q, true)
	if string(m.Body) != "hello" {
		e.t.Fatalf("body %q, want hello", m.Body)
	}
	if m.DeliveryInfo.RoutingKey != q || m.DeliveryInfo.Exchange != "" {
		e.t.Errorf("delivery info %+v: want exchange \"\" and routing key %q", m.DeliveryInfo, q)
	}
}

func testDirect(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Direct)
	q1 := e.queue(ch, "q1", nil)
	q2 := e.queue(ch, "q2", nil)
	e.bind(ch, q1, x, "k1", nil)
	e.bind(ch, q2, x, "k2", nil)
	e.bind(ch, q2, x, "both", nil)
	e.bind(ch, q1, x, "both", nil)
	e.publish(ch, x, "k1", text("one"))
	e.publish(ch, x, "k2", text("two"))
	e.publish(ch, x, "both", text("both"))
	e.publish(ch, x, "nobody", text("lost"))
	r1 := e.consume(ch, q1, true)
	r2 := e.consume(ch, q2, true)
	got1 := []string{string(r1.next().Body), string(r1.next().Body)}
	got2 := []string{string(r2.next().Body), string(r2.next().Body)}
	slices.Sort(got1)
	slices.Sort(got2)
	if !slices.Equal(got1, []string{"both", "one"}) || !slices.Equal(got2, []string{"both", "two"}) {
		e.t.Fatalf("q1 got %q, q2 got %q", got1, got2)
	}
	r1.none()
	r2.none()
	m := text("x")
	e.publish(ch, x, "k1", m)
	d := r1.next()
	if d.DeliveryInfo.Exchange != x || d.DeliveryInfo.RoutingKey != "k1" || d.DeliveryInfo.ConsumerTag != r1.tag {
		e.t.Errorf("delivery info %+v: want exchange %q, key k1, consumer %q", d.DeliveryInfo, x, r1.tag)
	}
	if d.DeliveryInfo.DeliveryTag == "" {
		e.t.Error("empty delivery tag")
	}
}

// routes publishes each key and reports, per key, which of the queues got
// the message. After each routed message it sends a marker straight to
// every queue (default exchange, same channel, so it is stored after the
// routed message on every broker that keeps a publisher's order) and reads
// each queue up to its marker: no reliance on timing, even where the broker
// routes asynchronously.
func (e *env) routes(ch transport.Channel, x string, queues []string, keys []string, headers []map[string]any) [][]bool {
	e.t.Helper()
	out := make([][]bool, len(keys))
	for i, k := range keys {
		m := text(fmt.Sprintf("m%d", i))
		if headers != nil {
			m.Headers = headers[i]
		}
		e.publish(ch, x, k, m)
		marker := fmt.Sprintf("marker%d", i)
		for _, q := range queues {
			e.publish(ch, "", q, text(marker))
		}
		out[i] = make([]bool, len(queues))
		for j, q := range queues {
			for {
				got := string(e.get(ch, q, true).Body)
				if got == marker {
					break
				}
				if got != string(m.Body) || out[i][j] {
					e.t.Fatalf("queue %s: got %q, want one %q then %q", q, got, m.Body, marker)
				}
				out[i][j] = true
			}
		}
	}
	return out
}

func testTopic(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Topic)
	qa := e.queue(ch, "stock-all", nil)
	qu := e.queue(ch, "stock-us", nil)
	e.bind(ch, qa, x, "stock.#", nil)
	e.bind(ch, qu, x, "stock.us.*", nil)
	keys := []string{"stock.us.nasdaq", "stock.europe.OSE", "stockxeuropexOSE", "bond.us.x"}
	want := [][]bool{{true, true}, {true, false}, {false, false}, {false, false}}
	got := e.routes(ch, x, []string{qa, qu}, keys, nil)
	for i := range keys {
		if !slices.Equal(got[i], want[i]) {
			e.t.Errorf("key %q reached [stock.# stock.us.*] = %v, want %v", keys[i], got[i], want[i])
		}
	}
}

func testTopicWildcards(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Topic)
	q1 := e.queue(ch, "star", nil)
	q2 := e.queue(ch, "hash", nil)
	e.bind(ch, q1, x, "a.*.c", nil)
	e.bind(ch, q2, x, "a.#", nil)
	keys := []string{"a.b.c", "a.b.x.c", "a", "a.b"}
	var want [][]bool
	if e.f.TopicKombu {
		// Kombu: "*" is ".*?[^\.]" (several words), "a.#" needs the dot.
		want = [][]bool{{true, true}, {true, true}, {false, false}, {false, true}}
	} else {
		want = [][]bool{{true, true}, {false, true}, {false, true}, {false, true}}
	}
	got := e.routes(ch, x, []string{q1, q2}, keys, nil)
	for i := range keys {
		if !slices.Equal(got[i], want[i]) {
			e.t.Errorf("key %q reached [a.*.c a.#] = %v, want %v (TopicKombu=%v)",
				keys[i], got[i], want[i], e.f.TopicKombu)
		}
	}
}

func testFanoutBroadcast(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Fanout)
	q1 := e.queue(ch, "f1", nil)
	q2 := e.queue(ch, "f2", nil)
	q3 := e.queue(ch, "unbound", nil)
	e.bind(ch, q1, x, "", nil)
	e.bind(ch, q2, x, "", nil)
	got := e.routes(ch, x, []string{q1, q2, q3}, []string{"", "any.key"}, nil)
	for i, row := range got {
		if !slices.Equal(row, []bool{true, true, false}) {
			e.t.Errorf("publish %d reached [f1 f2 unbound] = %v, want [true true false]", i, row)
		}
	}
}

func testFanoutPubSub(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Fanout)
	q1 := e.queue(ch, "f1", nil)
	q2 := e.queue(ch, "f2", nil)
	e.bind(ch, q1, x, "", nil)
	e.bind(ch, q2, x, "", nil)
	ch2 := e.channel() // one fanout queue per exchange per channel (Kombu)
	r1 := e.consume(ch, q1, true)
	r2 := e.consume(ch2, q2, true)
	// The subscriptions go live asynchronously: publish until both have
	// received one (at-most-once delivery to live subscribers).
	deadline := time.Now().Add(e.f.Timeout)
	var got1, got2 bool
	for !(got1 && got2) {
		if time.Now().After(deadline) {
			e.t.Fatalf("fanout: f1 received %v, f2 received %v within %v", got1, got2, e.f.Timeout)
		}
		e.publish(ch, x, "", text("ping"))
		wait := time.After(20 * time.Millisecond)
	drain:
		for {
			select {
			case m := <-r1.c:
				got1 = got1 || string(m.Body) == "ping"
			case m := <-r2.c:
				got2 = got2 || string(m.Body) == "ping"
			case <-wait:
				break drain
			}
		}
	}
}

func testHeaders(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Headers)
	qall := e.queue(ch, "all", nil)
	qany := e.queue(ch, "any", nil)
	e.bind(ch, qall, x, "", map[string]any{"x-match": "all", "a": "1", "b": "2"})
	e.bind(ch, qany, x, "", map[string]any{"x-match": "any", "a": "1", "c": "3"})
	headers := []map[string]any{
		{"a": "1", "b": "2"},
		{"a": "1"},
		{"c": "3", "z": "9"},
		{"b": "2"},
		{},
	}
	want := [][]bool{{true, true}, {false, true}, {false, true}, {false, false}, {false, false}}
	keys := make([]string, len(headers))
	got := e.routes(ch, x, []string{qall, qany}, keys, headers)
	for i := range headers {
		if !slices.Equal(got[i], want[i]) {
			e.t.Errorf("headers %v reached [all any] = %v, want %v", headers[i], got[i], want[i])
		}
	}
}

func testGetEmpty(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	_, err := ch.Get(e.ctx, q, false)
	if !errors.Is(err, transport.ErrEmpty) {
		e.t.Fatalf("Get on an empty queue: %v, want ErrEmpty", err)
	}
}

func testPurge(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	for i := range 3 {
		e.publish(ch, "", q, text(fmt.Sprint(i)))
	}
	e.waitSize(ch, q, 3)
	n, err := ch.PurgeQueue(e.ctx, q)
	if err != nil || n != 3 {
		e.t.Fatalf("PurgeQueue = %d, %v; want 3", n, err)
	}
	e.empty(ch, q)
}

func testPassiveMissing(e *env) {
	// A fresh channel for each: on AMQP a 404 closes the channel.
	ch := e.channel()
	_, err := ch.DeclareQueue(e.ctx, transport.Queue{Name: e.name("missing"), Passive: true})
	if !errors.Is(err, transport.ErrNotFound) {
		e.t.Errorf("passive declare of a missing queue: %v, want ErrNotFound", err)
	}
	ch = e.channel()
	err = ch.DeclareExchange(e.ctx, transport.Exchange{Name: e.name("missing-x"), Type: transport.Direct, Passive: true})
	if !errors.Is(err, transport.ErrNotFound) {
		e.t.Errorf("passive declare of a missing exchange: %v, want ErrNotFound", err)
	}
	ch = e.channel()
	q := e.queue(ch, "present", nil)
	e.publish(ch, "", q, text("so that it exists on every broker"))
	e.waitSize(ch, q, 1)
}

func testNotEquivalent(e *env) {
	ch := e.channel()
	x := e.exchange(ch, "x", transport.Direct)
	if err := ch.DeclareExchange(e.ctx, transport.Exchange{Name: x, Type: transport.Direct}); err != nil {
		e.t.Fatalf("same redeclaration: %v", err)
	}
	err := ch.DeclareExchange(e.ctx, transport.Exchange{Name: x, Type: transport.Fanout})
	if !errors.Is(err, transport.ErrNotEquivalent) {
		e.t.Fatalf("redeclaration with another type: %v, want ErrNotEquivalent", err)
	}
}

func testAck(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	e.publish(ch, "", q, text("a"))
	r := e.consume(ch, q, false)
	m := r.next()
	if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
		e.t.Fatalf("Ack: %v", err)
	}
	if err := ch.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	// With restore on close, an unsettled message would be back now.
	e.empty(e.channel(), q)
}

func testRejectDrop(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	e.publish(ch, "", q, text("a"))
	r := e.consume(ch, q, false)
	m := r.next()
	if err := ch.Reject(m.DeliveryInfo.DeliveryTag, false); err != nil {
		e.t.Fatalf("Reject: %v", err)
	}
	r.none()
	if err := ch.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.empty(e.channel(), q)
}

func testRejectRequeue(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	e.publish(ch, "", q, text("again"))
	r := e.consume(ch, q, false)
	m := r.next()
	if m.DeliveryInfo.Redelivered {
		e.t.Error("first delivery marked redelivered")
	}
	if err := ch.Reject(m.DeliveryInfo.DeliveryTag, true); err != nil {
		e.t.Fatalf("Reject: %v", err)
	}
	m2 := r.next()
	if string(m2.Body) != "again" {
		e.t.Fatalf("redelivery body %q", m2.Body)
	}
	if e.f.RedeliveredFlag && !m2.DeliveryInfo.Redelivered {
		e.t.Error("requeued message not marked redelivered")
	}
	ch.Ack(m2.DeliveryInfo.DeliveryTag)
}

func testPrefetch(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	for i := range 3 {
		e.publish(ch, "", q, text(fmt.Sprint(i)))
	}
	if err := ch.Qos(e.ctx, 2); err != nil {
		e.t.Fatalf("Qos: %v", err)
	}
	r := e.consume(ch, q, false)
	m1, m2 := r.next(), r.next()
	r.none()
	info, err := ch.DeclareQueue(e.ctx, transport.Queue{Name: q, Passive: true})
	if err != nil || info.Messages != 1 {
		e.t.Fatalf("with a full window the queue should keep 1 message: %+v, %v", info, err)
	}
	if err := ch.Ack(m1.DeliveryInfo.DeliveryTag); err != nil {
		e.t.Fatal(err)
	}
	m3 := r.next()
	got := []string{string(m1.Body), string(m2.Body), string(m3.Body)}
	slices.Sort(got)
	if !slices.Equal(got, []string{"0", "1", "2"}) {
		e.t.Fatalf("got %q", got)
	}
	ch.Ack(m2.DeliveryInfo.DeliveryTag)
	ch.Ack(m3.DeliveryInfo.DeliveryTag)
}

func testCancel(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	r := e.consume(ch, q, true)
	e.publish(ch, "", q, text("before"))
	if m := r.next(); string(m.Body) != "before" {
		e.t.Fatalf("got %q", m.Body)
	}
	if err := ch.Cancel(e.ctx, r.tag); err != nil {
		e.t.Fatalf("Cancel: %v", err)
	}
	e.publish(ch, "", q, text("after"))
	// The message stays in (or comes back to) the queue.
	m := e.get(ch, q, true)
	if string(m.Body) != "after" {
		e.t.Fatalf("got %q", m.Body)
	}
	r.none()
}

func testRestoreOnClose(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	for i := range 3 {
		e.publish(ch, "", q, text(fmt.Sprint(i)))
	}
	r := e.consume(ch, q, false)
	for range 3 {
		r.next()
	}
	if err := ch.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	ch2 := e.channel()
	var got []string
	for range 3 {
		m := e.get(ch2, q, true)
		got = append(got, string(m.Body))
		if e.f.RedeliveredFlag && !m.DeliveryInfo.Redelivered {
			e.t.Errorf("restored message %q not marked redelivered", m.Body)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"0", "1", "2"}) {
		e.t.Fatalf("restored %q", got)
	}
	e.empty(ch2, q)
}

func testPriorities(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", map[string]any{"x-max-priority": int64(10)})
	for _, p := range []int{3, 9, 0, 6} {
		m := text(fmt.Sprint(p))
		m.Properties.Priority = p
		e.publish(ch, "", q, m)
	}
	e.waitSize(ch, q, 4)
	want := []string{"0", "3", "6", "9"}
	if e.f.Priorities == HigherFirst {
		slices.Reverse(want)
	}
	var got []string
	for range 4 {
		got = append(got, string(e.get(ch, q, true).Body))
	}
	if !slices.Equal(got, want) {
		e.t.Fatalf("priority order %q, want %q", got, want)
	}
}
