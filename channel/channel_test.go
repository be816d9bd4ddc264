package channel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

var ctx = context.Background()

func newChannel(t *testing.T, opts channel.Options) (*channel.Channel, *fakeStore) {
	t.Helper()
	h := runHub(t)
	if opts.State == nil {
		opts.State = channel.NewState()
	}
	st := newFakeStore(opts.State)
	ch := channel.New(h, st, opts)
	t.Cleanup(func() { ch.Close() })
	return ch, st
}

// Kombu test_exchange_declare.
func TestDeclareExchange(t *testing.T) {
	ch, _ := newChannel(t, channel.Options{})
	err := ch.DeclareExchange(ctx, transport.Exchange{Name: "x", Passive: true})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("passive unknown: %v", err)
	}
	if err.Error() != "transport: channel error 404: NOT_FOUND - no exchange 'x' in vhost '/'" {
		t.Errorf("error text %q", err)
	}
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "x", Type: transport.Topic, Durable: true}))
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "x", Type: transport.Topic, Durable: true}))
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "x", Passive: true}))
	for _, ex := range []transport.Exchange{
		{Name: "x", Type: transport.Topic, Durable: false},
		{Name: "x", Type: transport.Direct, Durable: true},
		{Name: "x", Type: transport.Topic, Durable: true, AutoDelete: true},
		{Name: "x", Type: transport.Topic, Durable: true, Arguments: map[string]any{"alternate-exchange": "ae"}},
	} {
		if err := ch.DeclareExchange(ctx, ex); !errors.Is(err, transport.ErrNotEquivalent) {
			t.Errorf("redeclare %+v: %v, want ErrNotEquivalent", ex, err)
		}
	}
	if ch.State().Typeof("x") != transport.Topic || ch.State().Typeof("unknown") != transport.Direct {
		t.Error("Typeof")
	}
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: "d", Type: "x-delayed-message"}); !errors.Is(err, transport.ErrUnsupported) {
		t.Errorf("unknown type: %v", err)
	}
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "", Passive: true}))
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "n", Arguments: map[string]any{"a": int64(1)}}))
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "n", Arguments: map[string]any{"a": 1.0}}))
}

func TestBindWritesThroughUnbindStaysLocal(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	err := ch.BindQueue(ctx, transport.Binding{Queue: "q", Exchange: "nope", RoutingKey: "k"})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("bind to an undeclared exchange: %v", err)
	}
	err = ch.BindQueue(ctx, transport.Binding{Queue: "q", Exchange: "", RoutingKey: "k"})
	var be *transport.BrokerError
	if !errors.As(err, &be) || be.Code != 403 {
		t.Fatalf("bind to the default exchange: %v", err)
	}
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "t", Type: transport.Topic}))
	b := transport.Binding{Queue: "q", Exchange: "t", RoutingKey: "a.*.c"}
	mustNoErr(t, ch.BindQueue(ctx, b))
	mustNoErr(t, ch.BindQueue(ctx, b)) // already bound: not written again
	want := channel.Binding{Exchange: "t", Type: transport.Topic,
		Row: channel.Row{RoutingKey: "a.*.c", Pattern: `^a\..*?[^\.]\.c$`, Queue: "q"}}
	if !slices.Equal(st.bound, []channel.Binding{want}) {
		t.Fatalf("store got %+v, want %+v", st.bound, want)
	}
	if got := ch.State().QueueBindings("q"); !slices.Equal(got, []channel.Binding{want}) {
		t.Fatalf("queue bindings %+v", got)
	}
	mustNoErr(t, ch.UnbindQueue(ctx, b))
	if len(ch.State().Table("t")) != 0 || len(ch.State().QueueBindings("q")) != 0 {
		t.Fatal("unbind left the binding in the state")
	}
	if len(st.bound) != 1 {
		t.Fatal("unbind reached the store")
	}
	mustNoErr(t, ch.UnbindQueue(ctx, b)) // unknown: nothing
}

// Kombu test_queue_delete__if_empty.
func TestDeleteQueueIfEmpty(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "x"}))
	_, err := ch.DeclareQueue(ctx, transport.Queue{Name: "q"})
	mustNoErr(t, err)
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "q", Exchange: "x", RoutingKey: "k"}))
	for i := range 3 {
		mustNoErr(t, ch.Publish(ctx, body(fmt.Sprint(i)), "x", "k", transport.PublishOptions{}))
	}
	_, err = ch.DeleteQueue(ctx, "q", false, true)
	if !errors.Is(err, transport.ErrPreconditionFailed) {
		t.Fatalf("if_empty on a full queue: %v", err)
	}
	if len(ch.State().QueueBindings("q")) != 1 {
		t.Fatal("binding removed although the queue was kept")
	}
	n, err := ch.PurgeQueue(ctx, "q")
	if err != nil || n != 3 {
		t.Fatalf("purge = %d, %v", n, err)
	}
	n, err = ch.DeleteQueue(ctx, "q", false, true)
	if err != nil || n != 0 {
		t.Fatalf("delete = %d, %v", n, err)
	}
	if len(ch.State().QueueBindings("q")) != 0 || len(ch.State().Table("x")) != 0 {
		t.Fatal("bindings survive the queue")
	}
	if ok, _ := st.HasQueue(ctx, "q"); ok {
		t.Fatal("queue still in the store")
	}
}

func TestDeclareQueue(t *testing.T) {
	ch, _ := newChannel(t, channel.Options{VHost: "v"})
	_, err := ch.DeclareQueue(ctx, transport.Queue{Name: "q", Passive: true})
	if !errors.Is(err, transport.ErrNotFound) || err.Error() != "transport: channel error 404: NOT_FOUND - no queue 'q' in vhost 'v'" {
		t.Fatalf("passive missing: %v", err)
	}
	info, err := ch.DeclareQueue(ctx, transport.Queue{})
	if err != nil || len(info.Name) != len("amq.gen-")+36 || info.Name[:8] != "amq.gen-" {
		t.Fatalf("generated name: %+v, %v", info, err)
	}
	mustNoErr(t, ch.Publish(ctx, body("m"), "", info.Name, transport.PublishOptions{}))
	info, err = ch.DeclareQueue(ctx, transport.Queue{Name: info.Name, Passive: true})
	if err != nil || info.Messages != 1 {
		t.Fatalf("passive existing: %+v, %v", info, err)
	}
}

func TestPublishRouting(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "d"}))
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "f", Type: transport.Fanout}))
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "h", Type: transport.Headers}))
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "q1", Exchange: "d", RoutingKey: "k"}))
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "q2", Exchange: "d", RoutingKey: "k"}))
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "fq", Exchange: "f"}))
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "hq", Exchange: "h",
		Arguments: map[string]any{"x-match": "any", "a": "1"}}))

	m := &transport.Message{Body: []byte("hi"), Headers: map[string]any{"a": "1"}}
	mustNoErr(t, ch.Publish(ctx, m, "d", "k", transport.PublishOptions{}))
	if m.DeliveryInfo != (transport.DeliveryInfo{}) {
		t.Fatalf("Publish modified the caller's message: %+v", m.DeliveryInfo)
	}
	q1, q2 := st.queues["q1"], st.queues["q2"]
	if len(q1) != 1 || len(q2) != 1 || q1[0] == q2[0] {
		t.Fatalf("direct: q1 %d, q2 %d messages (want a copy each)", len(q1), len(q2))
	}
	if q1[0].DeliveryInfo.DeliveryTag == q2[0].DeliveryInfo.DeliveryTag {
		t.Error("copies share a delivery tag")
	}
	if di := q1[0].DeliveryInfo; di.Exchange != "d" || di.RoutingKey != "k" || di.DeliveryTag == "" {
		t.Errorf("delivery info %+v", di)
	}
	mustNoErr(t, ch.Publish(ctx, body("fan"), "f", "rk", transport.PublishOptions{}))
	if !slices.Equal(st.fanouts, []string{"f/rk:fan"}) || len(st.queues["fq"]) != 0 {
		t.Fatalf("fanout went %v / %d", st.fanouts, len(st.queues["fq"]))
	}
	mustNoErr(t, ch.Publish(ctx, m, "h", "", transport.PublishOptions{}))
	if len(st.queues["hq"]) != 1 {
		t.Fatal("headers exchange did not route")
	}
	// Unknown exchange: routed as direct with an empty table, dropped.
	mustNoErr(t, ch.Publish(ctx, body("lost"), "unknown", "k", transport.PublishOptions{}))
	mustNoErr(t, ch.Publish(ctx, body("lost"), "", "", transport.PublishOptions{}))
	if len(st.queues) != 3 {
		t.Fatalf("queues %v", st.queues)
	}
}

// Kombu test_lookup__undeliverable.
func TestDeadLetterQueue(t *testing.T) {
	ch, st := newChannel(t, channel.Options{DeadLetterQueue: "ae.undeliver"})
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "t", Type: transport.Topic}))
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "ae.undeliver", Exchange: "t", RoutingKey: "#"}))
	mustNoErr(t, ch.BindQueue(ctx, transport.Binding{Queue: "tq", Exchange: "t", RoutingKey: "a.*"}))
	mustNoErr(t, ch.Publish(ctx, body("1"), "t", "a.b", transport.PublishOptions{}))
	if len(st.queues["tq"]) != 1 || len(st.queues["ae.undeliver"]) != 0 {
		t.Fatalf("topic skips the dead-letter queue: %v", st.queues)
	}
	mustNoErr(t, ch.Publish(ctx, body("2"), "t", "zzz", transport.PublishOptions{}))
	mustNoErr(t, ch.Publish(ctx, body("3"), "unknown-ex", "k", transport.PublishOptions{}))
	mustNoErr(t, ch.Publish(ctx, body("4"), "", "", transport.PublishOptions{}))
	if got := bodies(st.queues["ae.undeliver"]); !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Fatalf("dead-letter queue holds %v", got)
	}
	qs, err := ch.Lookup(ctx, "unknown-ex", "k", nil)
	if err != nil || !slices.Equal(qs, []string{"ae.undeliver"}) {
		t.Fatalf("Lookup = %v, %v", qs, err)
	}
}

func TestReturns(t *testing.T) {
	ch, _ := newChannel(t, channel.Options{})
	mustNoErr(t, ch.DeclareExchange(ctx, transport.Exchange{Name: "d"}))
	got := make(chan *transport.Returned, 2)
	ch.HandleReturns(func(r *transport.Returned) { got <- r })
	mustNoErr(t, ch.Publish(ctx, body("m"), "d", "nope", transport.PublishOptions{Mandatory: true}))
	r := <-got
	if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != "d" || r.RoutingKey != "nope" || string(r.Message.Body) != "m" {
		t.Fatalf("returned %+v", r)
	}
	ch.HandleReturns(nil)
	mustNoErr(t, ch.Publish(ctx, body("m"), "d", "nope", transport.PublishOptions{Mandatory: true}))
	onHub(t, ch.Hub(), func() {})
	if len(got) != 0 {
		t.Fatal("returned without a handler")
	}
}
