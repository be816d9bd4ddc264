package messaging_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func TestQueueTypeArguments(t *testing.T) {
	q := messaging.QuorumQueue("qq", messaging.NewExchange("ex", messaging.Direct), "rk")
	q.DeliveryLimit = 3
	q.DeadLetterExchange = "dlx"
	q.DeadLetterRoutingKey = "dead"
	q.DeadLetterStrategy = messaging.DeadLetterAtLeastOnce
	q.MaxLength = 10
	want := map[string]any{"x-queue-type": "quorum", "x-delivery-limit": int64(3),
		"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead",
		"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish", "x-max-length": int64(10)}
	if got := q.Arguments(); !reflect.DeepEqual(got, want) {
		t.Errorf("Arguments() = %v, want %v", got, want)
	}
	if d := q.Declaration(); !d.Durable || d.Exclusive || d.AutoDelete {
		t.Errorf("QuorumQueue declaration %+v: must be durable, not exclusive, not auto-delete", d)
	}
	if !q.Replicated() {
		t.Error("a quorum queue must be Replicated")
	}

	// A routing key alone dead-letters through the default exchange; an
	// overflow the caller chose stays.
	q2 := messaging.Queue{Name: "q2", Type: messaging.QueueQuorum, DeadLetterRoutingKey: "dlq",
		DeadLetterStrategy: messaging.DeadLetterAtLeastOnce,
		QueueArguments:     map[string]any{"x-overflow": "drop-head"}}
	args := q2.Arguments()
	if v, ok := args["x-dead-letter-exchange"]; !ok || v != "" {
		t.Errorf("x-dead-letter-exchange = %v (set %v), want \"\"", v, ok)
	}
	if args["x-overflow"] != "drop-head" {
		t.Errorf("x-overflow = %v: the caller's choice must stay", args["x-overflow"])
	}
	if _, ok := q2.QueueArguments["x-queue-type"]; ok {
		t.Error("Arguments changed the caller's QueueArguments")
	}

	// Kombu's spelling (queue_arguments) is recognised as well.
	k := messaging.Queue{Name: "k", QueueArguments: map[string]any{"x-queue-type": "stream"}}
	if !k.Replicated() {
		t.Error("x-queue-type stream in QueueArguments must make the queue Replicated")
	}
	plain := messaging.NewQueue("plain", messaging.Exchange{}, "")
	if plain.Replicated() || len(plain.Arguments()) != 0 {
		t.Errorf("a classic queue: Replicated %v, Arguments %v", plain.Replicated(), plain.Arguments())
	}
}

func TestStreamConsumerChecks(t *testing.T) {
	c, _ := newFake(t, "fake://a", &fakeBroker{}, nil)
	noop := []messaging.Callback{func(any, *messaging.Message) {}}
	cases := []struct {
		name string
		q    messaging.Queue
		opts messaging.ConsumerOptions
		want string // "" : accepted
	}{
		{"noack", messaging.StreamQueue("s", messaging.Exchange{}, "", messaging.StreamFirst),
			messaging.ConsumerOptions{NoAck: true, PrefetchCount: 10}, "NoAck"},
		{"no prefetch", messaging.StreamQueue("s", messaging.Exchange{}, "", messaging.StreamFirst),
			messaging.ConsumerOptions{}, "PrefetchCount"},
		{"bad offset", messaging.StreamQueue("s", messaging.Exchange{}, "", "yesterday"),
			messaging.ConsumerOptions{PrefetchCount: 10}, "StreamOffset"},
		{"bad offset type", messaging.StreamQueue("s", messaging.Exchange{}, "", 1.5),
			messaging.ConsumerOptions{PrefetchCount: 10}, "StreamOffset"},
		{"offset on classic", messaging.Queue{Name: "c", StreamOffset: messaging.StreamFirst},
			messaging.ConsumerOptions{}, "not a stream"},
		{"first", messaging.StreamQueue("s", messaging.Exchange{}, "", messaging.StreamFirst),
			messaging.ConsumerOptions{PrefetchCount: 10}, ""},
		{"interval", messaging.StreamQueue("s", messaging.Exchange{}, "", "12h"),
			messaging.ConsumerOptions{PrefetchCount: 10}, ""},
		{"timestamp", messaging.StreamQueue("s", messaging.Exchange{}, "", time.Now()),
			messaging.ConsumerOptions{PrefetchCount: 10}, ""},
		{"offset", messaging.StreamQueue("s", messaging.Exchange{}, "", int64(42)),
			messaging.ConsumerOptions{PrefetchCount: 10}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Queues = []messaging.Queue{tc.q}
			tc.opts.Callbacks = noop
			cons, err := messaging.NewConsumer(c, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			err = cons.Consume(context.Background())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Consume: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Consume: %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestProducerConfirmAuto(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	direct := messaging.NewExchange("jobs", messaging.Direct)
	topic := messaging.NewExchange("events", messaging.Topic)
	quorum := messaging.QuorumQueue("jobs.q", direct, "job")
	classic := messaging.NewQueue("plain.q", direct, "plain")
	streamT := messaging.StreamQueue("events.s", topic, "ev.#", nil)
	p, err := messaging.NewProducer(c, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		name string
		opts messaging.PublishOptions
		want bool
	}{
		{"default exchange, classic queue", messaging.PublishOptions{RoutingKey: "plain.q",
			Declare: []messaging.Declaration{classic}}, false},
		{"default exchange, quorum queue in Declare", messaging.PublishOptions{RoutingKey: "jobs.q",
			Declare: []messaging.Declaration{quorum}}, true},
		{"direct exchange, quorum binding key", messaging.PublishOptions{Exchange: &direct, RoutingKey: "job"}, true},
		{"direct exchange, another key", messaging.PublishOptions{Exchange: &direct, RoutingKey: "plain"}, false},
		{"never", messaging.PublishOptions{Exchange: &direct, RoutingKey: "job", Confirm: messaging.ConfirmNever}, false},
		{"always", messaging.PublishOptions{RoutingKey: "nobody", Confirm: messaging.ConfirmAlways}, true},
		{"topic exchange before the stream is known", messaging.PublishOptions{Exchange: &topic, RoutingKey: "ev.x"}, false},
	}
	for _, s := range steps {
		if err := p.Publish(ctx, "x", s.opts); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := b.confirms[len(b.confirms)-1]; got != s.want {
			t.Errorf("%s: Confirm %v, want %v", s.name, got, s.want)
		}
	}
	// A consumer of the same connection makes the stream known.
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{streamT}})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := p.Publish(ctx, "x", messaging.PublishOptions{Exchange: &topic, RoutingKey: "ev.y"}); err != nil {
		t.Fatal(err)
	}
	if !b.confirms[len(b.confirms)-1] {
		t.Error("a message to a topic exchange a stream of this connection is bound to must be confirmed")
	}
	// The producer's own setting applies when the publish says nothing.
	never, _ := messaging.NewProducer(c, messaging.ProducerOptions{Confirm: messaging.ConfirmNever})
	if err := never.Publish(ctx, "x", messaging.PublishOptions{RoutingKey: "jobs.q"}); err != nil {
		t.Fatal(err)
	}
	if b.confirms[len(b.confirms)-1] {
		t.Error("ProducerOptions.Confirm ConfirmNever must win over the quorum default")
	}
	// PublishBatch decides per message.
	err = p.PublishBatch(ctx, []messaging.BatchMessage{
		{Body: "a", Options: messaging.PublishOptions{RoutingKey: "jobs.q"}},
		{Body: "b", Options: messaging.PublishOptions{RoutingKey: "plain.q"}},
	}, messaging.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.confirms[len(b.confirms)-2:]; !reflect.DeepEqual(got, []bool{true, false}) {
		t.Errorf("batch confirms %v, want [true false]", got)
	}
}
