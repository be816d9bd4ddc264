package amqp

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func TestExchangeTypes(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	declare := func(typ string) string {
		name := uniq(typ)
		if err := ch.DeclareExchange(ctx, transport.Exchange{Name: name, Type: typ, AutoDelete: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ch.DeleteExchange(cleanupCtx(t), name, false) })
		return name
	}
	bind := func(q, ex, key string, args map[string]any) {
		if err := ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: ex, RoutingKey: key, Arguments: args}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(q string) string {
		m, err := ch.Get(ctx, q, true)
		if errors.Is(err, transport.ErrEmpty) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(m.Body)
	}
	q1 := e.queue(ch, transport.Queue{AutoDelete: true})
	q2 := e.queue(ch, transport.Queue{AutoDelete: true})

	topic := declare("topic")
	bind(q1, topic, "stock.*.nyse", nil)
	bind(q2, topic, "stock.#", nil)
	mustPublish(t, ch, msg("t1"), topic, "stock.ibm.nyse")
	mustPublish(t, ch, msg("t2"), topic, "stock.ibm.lse.x")
	// Publishing is asynchronous on the broker side; a confirmed get order
	// holds because one channel's messages are routed in order.
	mustPublish(t, ch, msg("end"), "", q1)
	mustPublish(t, ch, msg("end"), "", q2)
	if a, b := get(q1), get(q1); a != "t1" || b != "end" {
		t.Errorf("topic q1: %q %q", a, b)
	}
	if a, b, c := get(q2), get(q2), get(q2); a != "t1" || b != "t2" || c != "end" {
		t.Errorf("topic q2: %q %q %q", a, b, c)
	}

	fan := declare("fanout")
	bind(q1, fan, "ignored", nil)
	bind(q2, fan, "", nil)
	mustPublish(t, ch, msg("f"), fan, "anything")
	mustPublish(t, ch, msg("end"), "", q1)
	mustPublish(t, ch, msg("end"), "", q2)
	if a, b := get(q1), get(q2); a != "f" || b != "f" {
		t.Errorf("fanout: %q %q", a, b)
	}
	get(q1)
	get(q2)

	hdr := declare("headers")
	bind(q1, hdr, "", map[string]any{"x-match": "all", "format": "pdf", "type": "report"})
	bind(q2, hdr, "", map[string]any{"x-match": "any", "format": "zip", "size": 10})
	pub := func(body string, h map[string]any) {
		m := msg(body)
		m.Headers = h
		mustPublish(t, ch, m, hdr, "")
	}
	pub("h-all", map[string]any{"format": "pdf", "type": "report"})
	pub("h-any", map[string]any{"size": int64(10)})
	pub("h-none", map[string]any{"format": "pdf"})
	mustPublish(t, ch, msg("end"), "", q1)
	mustPublish(t, ch, msg("end"), "", q2)
	if a, b := get(q1), get(q1); a != "h-all" || b != "end" {
		t.Errorf("headers all: %q %q", a, b)
	}
	if a, b := get(q2), get(q2); a != "h-any" || b != "end" {
		t.Errorf("headers any: %q %q", a, b)
	}

	direct := declare("direct")
	bind(q1, direct, "k", nil)
	bind(q2, direct, "k", nil)
	if err := ch.UnbindQueue(ctx, transport.Binding{Queue: q1, Exchange: direct, RoutingKey: "k"}); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, ch, msg("d"), direct, "k")
	mustPublish(t, ch, msg("end"), "", q1)
	mustPublish(t, ch, msg("end"), "", q2)
	if a := get(q1); a != "end" {
		t.Errorf("unbound queue got %q", a)
	}
	if a := get(q2); a != "d" {
		t.Errorf("direct: %q", a)
	}
}

func TestPriorities(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{"x-max-priority": 10}})
	for _, p := range []int{1, 9, 0, 5} {
		m := msg(strconv.Itoa(p))
		m.Properties.Priority = p
		mustPublish(t, ch, m, "", q)
	}
	waitDepth(t, ch, q, 4)
	var order []string
	for range 4 {
		m, err := ch.Get(ctxT(t), q, true)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, string(m.Body))
	}
	if fmt.Sprint(order) != "[9 5 1 0]" {
		t.Errorf("priority order %v, want higher first", order)
	}
}

func TestQueueArguments(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	dlx := uniq("dlx")
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: dlx, Type: "fanout", AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.DeleteExchange(cleanupCtx(t), dlx, false) })
	dead := e.queue(ch, transport.Queue{AutoDelete: true})
	if err := ch.BindQueue(ctx, transport.Binding{Queue: dead, Exchange: dlx}); err != nil {
		t.Fatal(err)
	}
	ttl := e.queue(ch, transport.Queue{Arguments: map[string]any{
		"x-message-ttl": 1, "x-dead-letter-exchange": dlx, "x-expires": 60000}})
	mustPublish(t, ch, msg("expires"), "", ttl)
	deadline := time.Now().Add(wait)
	for {
		m, err := ch.Get(ctx, dead, true)
		if err == nil {
			if string(m.Body) != "expires" {
				t.Fatalf("dead-lettered %q", m.Body)
			}
			if _, ok := m.Headers["x-death"].([]any); !ok {
				t.Errorf("x-death header: %#v", m.Headers["x-death"])
			}
			break
		}
		if !errors.Is(err, transport.ErrEmpty) || time.Now().After(deadline) {
			t.Fatalf("no dead-lettered message: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	capped := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{"x-max-length": 2}})
	for i := range 4 {
		mustPublish(t, ch, msg(strconv.Itoa(i)), "", capped)
	}
	waitDepth(t, ch, capped, 2)
	if m, _ := ch.Get(ctx, capped, true); m == nil || string(m.Body) != "2" {
		t.Errorf("x-max-length drops the head: got %+v", m)
	}
}

func TestMandatoryReturn(t *testing.T) {
	e := dial(t, nil)
	ch := e.channel()
	returned := make(chan *transport.Returned, 1)
	var onHub bool
	ch.(transport.Returner).OnReturn(func(r *transport.Returned) {
		onHub = true
		returned <- r
	})
	ex := uniq("noroute")
	if err := ch.DeclareExchange(ctxT(t), transport.Exchange{Name: ex, AutoDelete: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.DeleteExchange(cleanupCtx(t), ex, false) })
	m := msg("lost")
	m.Properties.MessageID = "ret-1"
	m.Headers = map[string]any{"h": "v"}
	if err := ch.Publish(ctxT(t), m, ex, "nowhere", transport.PublishOptions{Mandatory: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returned:
		if r.ReplyCode != 312 || r.Exchange != ex || r.RoutingKey != "nowhere" || string(r.Message.Body) != "lost" ||
			r.Message.Properties.MessageID != "ret-1" || r.Message.Headers["h"] != "v" {
			t.Errorf("returned: %+v %+v", r, r.Message)
		}
		if !onHub {
			t.Error("OnReturn did not run")
		}
	case <-time.After(wait):
		t.Fatal("no basic.return")
	}
}
