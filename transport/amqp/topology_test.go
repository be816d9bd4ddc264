package amqp

import (
	"testing"

	"github.com/kombu-go/kombu/transport"
)

func TestTopologyRecord(t *testing.T) {
	var tp topology
	tp.addExchange(transport.Exchange{Name: "ex", Type: "topic"})
	tp.addExchange(transport.Exchange{Name: "ex", Type: "fanout"}) // redeclared: replaced
	tp.addExchange(transport.Exchange{Name: "ex2"})
	tp.addQueue(transport.Queue{Name: "q1"}, "q1")
	tp.addQueue(transport.Queue{Exclusive: true}, "amq.gen-A")
	tp.addQueue(transport.Queue{Name: "ad", AutoDelete: true}, "ad")
	b1 := transport.Binding{Queue: "q1", Exchange: "ex", RoutingKey: "k"}
	b2 := transport.Binding{Queue: "amq.gen-A", Exchange: "ex2", Arguments: map[string]any{"x-match": "all"}}
	tp.addBinding(b1)
	tp.addBinding(b1) // duplicates are recorded once
	tp.addBinding(b2)
	tp.addBinding(transport.Binding{Queue: "ad", Exchange: "ex2"})
	if len(tp.exchanges) != 2 || tp.exchanges[0].Type != "fanout" || len(tp.bindings) != 3 || len(tp.queues) != 3 {
		t.Fatalf("record: %+v", tp)
	}
	if !tp.queues[1].serverNamed || tp.queues[0].serverNamed {
		t.Fatalf("server-named flags: %+v", tp.queues)
	}

	// A reconnection renames the server-named queue: bindings and later
	// lookups follow, even across two renames.
	tp.rename("amq.gen-A", "amq.gen-B")
	tp.rename("amq.gen-B", "amq.gen-C")
	if tp.resolve("amq.gen-A") != "amq.gen-C" || tp.resolve("q1") != "q1" {
		t.Fatalf("resolve: %q", tp.resolve("amq.gen-A"))
	}
	if tp.bindings[1].Queue != "amq.gen-C" {
		t.Fatalf("binding not renamed: %+v", tp.bindings[1])
	}

	tp.deleteBinding(b1)
	if len(tp.bindings) != 2 {
		t.Fatalf("unbind: %+v", tp.bindings)
	}
	// The last consumer of an auto-delete queue leaves: forget it and its
	// bindings; a consumer still there keeps it.
	ch := &channel{}
	live := &consumer{queue: "ad"}
	ch.consumers = []*consumer{live}
	tp.consumerGone("ad", []*channel{ch})
	if len(tp.queues) != 3 {
		t.Fatal("auto-delete queue forgotten while consumed")
	}
	live.cancelled.Store(true)
	tp.consumerGone("ad", []*channel{ch})
	tp.consumerGone("q1", nil) // not auto-delete: kept
	if len(tp.queues) != 2 || len(tp.bindings) != 1 {
		t.Fatalf("after the last consumer: %+v", tp)
	}
	tp.deleteExchange("ex2")
	if len(tp.exchanges) != 1 || len(tp.bindings) != 0 {
		t.Fatalf("exchange delete: %+v", tp)
	}
	tp.deleteQueue("q1")
	if len(tp.queues) != 1 || tp.queues[0].name != "amq.gen-C" {
		t.Fatalf("queue delete: %+v", tp.queues)
	}
}
