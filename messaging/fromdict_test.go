package messaging_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func TestQueueFromDict(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		want messaging.Queue
	}{
		{"defaults", nil, messaging.Queue{Name: "q", Exchange: messaging.Exchange{Type: "direct", Durable: true}, Durable: true}},
		{"Kombu's quickstart", map[string]any{"exchange": "media", "routing_key": "video"},
			messaging.NewQueue("q", messaging.NewExchange("media", "direct"), "video")},
		{"binding_key wins, None is absent", map[string]any{"exchange": "t", "exchange_type": "topic",
			"routing_key": "rk", "binding_key": "a.#", "durable": nil, "queue_arguments": nil},
			messaging.NewQueue("q", messaging.NewExchange("t", "topic"), "a.#")},
		{"durable and auto_delete for both, prefixed forms override", map[string]any{"exchange": "e",
			"durable": false, "auto_delete": true, "queue_durable": true, "exchange_auto_delete": false},
			messaging.Queue{Name: "q", Exchange: messaging.Exchange{Name: "e", Type: "direct"}, Durable: true, AutoDelete: true}},
		{"arguments, flags and delivery mode", map[string]any{"exchange": "h", "exchange_type": "headers",
			"exchange_arguments": map[string]any{"alternate-exchange": "ae"}, "queue_arguments": map[string]any{"x-max-priority": 10},
			"binding_arguments": map[string]any{"x-match": "any"}, "consumer_arguments": map[string]any{"x-priority": 1},
			"no_ack": true, "exclusive": true, "delivery_mode": "transient"},
			messaging.Queue{Name: "q", Exchange: messaging.Exchange{Name: "h", Type: "headers", Durable: true,
				Arguments: map[string]any{"alternate-exchange": "ae"}, DeliveryMode: messaging.Transient},
				Durable: true, NoAck: true, Exclusive: true, QueueArguments: map[string]any{"x-max-priority": 10},
				BindingArguments: map[string]any{"x-match": "any"}, ConsumerArguments: map[string]any{"x-priority": 1}}},
		{"bindings replace the exchange", map[string]any{"exchange": "ignored", "routing_key": "rk", "bindings": []any{
			map[string]any{"exchange": "a", "routing_key": "x"},
			map[string]any{"exchange": "b", "exchange_type": "fanout", "arguments": map[string]any{"k": "v"}},
			messaging.Binding{Exchange: messaging.NewExchange("c", "topic"), RoutingKey: "c.*"},
		}},
			messaging.Queue{Name: "q", RoutingKey: "rk", Durable: true, Bindings: []messaging.Binding{
				{Exchange: messaging.NewExchange("a", "direct"), RoutingKey: "x"},
				{Exchange: messaging.NewExchange("b", "fanout"), Arguments: map[string]any{"k": "v"}},
				{Exchange: messaging.NewExchange("c", "topic"), RoutingKey: "c.*"},
			}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := messaging.QueueFromDict("q", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A configuration file's numbers arrive as float64 (JSON) or int (YAML, Go).
func TestQueueFromDictDeliveryModes(t *testing.T) {
	var opts map[string]any
	if err := json.Unmarshal([]byte(`{"exchange": "e", "delivery_mode": 1}`), &opts); err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{opts["delivery_mode"], 1, messaging.Transient, "transient"} {
		q, err := messaging.QueueFromDict("q", map[string]any{"delivery_mode": v})
		if err != nil || q.Exchange.DeliveryMode != messaging.Transient {
			t.Errorf("delivery_mode %#v: %v %v", v, q.Exchange.DeliveryMode, err)
		}
	}
	for _, v := range []any{2, float64(2), "persistent", messaging.Persistent} {
		if q, err := messaging.QueueFromDict("q", map[string]any{"delivery_mode": v}); err != nil || q.Exchange.DeliveryMode != messaging.Persistent {
			t.Errorf("delivery_mode %#v: %v %v", v, q.Exchange.DeliveryMode, err)
		}
	}
}

// Unknown keys and wrong types are errors naming every one of them.
func TestQueueFromDictErrors(t *testing.T) {
	_, err := messaging.QueueFromDict("q", map[string]any{
		"exchnage": "typo", "durable": "yes", "routing_key": 5, "queue_arguments": []any{1},
		"delivery_mode": 3, "bindings": []any{map[string]any{"exchange": 1, "key": "x"}, "nope"},
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{`queue "q"`, `unknown key "exchnage"`, "durable: want true or false, got string",
		"routing_key: want a string, got int", "queue_arguments: want a table", "delivery_mode: want 1, 2",
		"bindings[0].exchange: want a string", `bindings[0].unknown key "key"`, "bindings[1]: want a binding table"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := messaging.QueueFromDict("q", map[string]any{"bindings": "x"}); err == nil {
		t.Error("bindings as a string accepted")
	}
}

// Queues from a configuration file's dictionaries, declared and used.
func ExampleQueueFromDict() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := messaging.NewConnection("memory://fromdict", messaging.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	var config map[string]map[string]any
	json.Unmarshal([]byte(`{
		"images": {"exchange": "media", "routing_key": "media.image", "exchange_type": "topic"},
		"all":    {"exchange": "media", "binding_key": "media.#", "exchange_type": "topic"}
	}`), &config)
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"images", "all"} {
		q, err := messaging.QueueFromDict(name, config[name])
		if err != nil {
			panic(err)
		}
		if _, err := q.Declare(ctx, ch); err != nil {
			panic(err)
		}
		fmt.Println(q)
	}
	producer, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		panic(err)
	}
	media := messaging.NewExchange("media", messaging.Topic)
	if err := producer.Publish(ctx, "cat.png", messaging.PublishOptions{Exchange: &media, RoutingKey: "media.image"}); err != nil {
		panic(err)
	}
	for _, name := range []string{"images", "all"} {
		m, err := messaging.Queue{Name: name}.Get(ctx, ch, messaging.GetOptions{})
		if err != nil || m == nil {
			panic(fmt.Sprint(m, err))
		}
		body, _ := m.Decode()
		fmt.Println(name, "got", body)
		m.Ack()
	}
	// Output:
	// Queue images -> Exchange media(topic) -> media.image
	// Queue all -> Exchange media(topic) -> media.#
	// images got cat.png
	// all got cat.png
}
