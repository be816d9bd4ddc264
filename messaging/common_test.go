package messaging_test

import (
	"context"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func TestDrainConsumer(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.Queue{Name: "q"}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "q"})
	for i := 0; i < 5; i++ {
		if err := p.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	var own []any
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) { own = append(own, body) }}})
	var got []any
	for m, err := range messaging.DrainConsumer(ctx, cons, 3) {
		if err != nil {
			t.Fatal(err)
		}
		v, _ := m.Decode()
		got = append(got, v)
		m.Ack()
	}
	if !reflect.DeepEqual(got, []any{int64(0), int64(1), int64(2)}) {
		t.Errorf("got %v", got)
	}
	if len(own) < 3 {
		t.Errorf("the consumer's own callbacks ran %d times", len(own))
	}
	if len(cons.ConsumerTags()) != 0 {
		t.Error("still consuming after the iteration")
	}
	// The rest with IterMessages; a deadline ends the iteration quietly.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	got = nil
	for m, err := range messaging.IterMessages(short, c, q, 0, messaging.ConsumerOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		v, _ := m.Decode()
		got = append(got, v)
		m.Ack()
	}
	if len(got) < 2 {
		// Unacknowledged messages of the first consumer may be redelivered
		// first; the last two must be there.
		t.Errorf("got %v", got)
	}
}

// Request/reply: SendReply and CollectReplies with a correlation id.
func TestSendCollectReplies(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	requests := messaging.NewQueue("rpc", messaging.NewExchange("rpc", messaging.Direct), "rpc")
	replies := messaging.Queue{Name: "reply-" + messaging.NewUUID(), AutoDelete: true}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: requests.Exchange, RoutingKey: "rpc"})
	ch, _ := c.DefaultChannel(ctx)
	if _, err := replies.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	cid := messaging.NewUUID()
	for _, id := range []string{"other", cid} {
		if err := p.Publish(ctx, map[string]any{"n": 21}, messaging.PublishOptions{ReplyTo: replies.Name,
			CorrelationID: id, Declare: []messaging.Declaration{requests}}); err != nil {
			t.Fatal(err)
		}
	}
	// The server answers both requests.
	server, _ := messaging.NewProducer(c, messaging.ProducerOptions{})
	n := 0
	for req, err := range messaging.IterMessages(ctx, c, requests, 2, messaging.ConsumerOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		var in struct{ N int }
		if err := req.DecodeInto(&in); err != nil {
			t.Fatal(err)
		}
		if err := messaging.SendReply(ctx, server, messaging.Exchange{}, req, map[string]any{"n": in.N * 2},
			messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		req.Ack()
		n++
	}
	if n != 2 {
		t.Fatalf("%d requests", n)
	}
	var got []any
	for body, err := range messaging.CollectReplies(ctx, c, replies, messaging.CollectOptions{Limit: 1, CorrelationID: cid, Ack: true}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, body)
	}
	if !reflect.DeepEqual(got, []any{map[string]any{"n": int64(42)}}) {
		t.Errorf("replies %v", got)
	}
}

func TestBroadcast(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if u := messaging.NewUUID(); !uuid.MatchString(u) {
		t.Errorf("NewUUID %q", u)
	}
	q := messaging.Broadcast("news", messaging.BroadcastOptions{})
	if !strings.HasPrefix(q.Name, "bcast.") || !uuid.MatchString(strings.TrimPrefix(q.Name, "bcast.")) ||
		q.Exchange.Name != "news" || q.Exchange.Type != messaging.Fanout || !q.AutoDelete || q.Alias != "news" {
		t.Errorf("Broadcast = %+v", q)
	}
	if q := messaging.Broadcast("news", messaging.BroadcastOptions{Queue: "mine"}); q.Name != "mine" {
		t.Errorf("named: %q", q.Name)
	}
	if q := messaging.Broadcast("news", messaging.BroadcastOptions{Queue: "mine", Unique: true}); !strings.HasPrefix(q.Name, "mine.") {
		t.Errorf("unique: %q", q.Name)
	}
	// End to end on memory: every broadcast queue gets every message.
	ctx := testCtx(t)
	c := memConn(t)
	q1, q2 := messaging.Broadcast("news", messaging.BroadcastOptions{}), messaging.Broadcast("news", messaging.BroadcastOptions{})
	ch, _ := c.DefaultChannel(ctx)
	for _, q := range []messaging.Queue{q1, q2} {
		if _, err := q.Declare(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q1.Exchange})
	if err := p.Publish(ctx, "extra", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []messaging.Queue{q1, q2} {
		m, err := q.Get(ctx, ch, messaging.GetOptions{NoAck: true})
		if err != nil {
			t.Fatalf("%s: %v", q.Name, err)
		}
		if v, _ := m.Decode(); v != "extra" {
			t.Errorf("%s: %v", q.Name, v)
		}
	}
}
