package memory_test

import (
	"context"
	"fmt"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/memory"
)

// Publish through a topic exchange and consume on the hub, acknowledging
// each message; the hub is driven by the example's own goroutine.
func Example() {
	h, err := hub.New(hub.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()
	tr, err := memory.New(transport.Config{Hostname: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}

	ch.DeclareExchange(ctx, transport.Exchange{Name: "news", Type: transport.Topic})
	ch.DeclareQueue(ctx, transport.Queue{Name: "sport"})
	ch.BindQueue(ctx, transport.Binding{Queue: "sport", Exchange: "news", RoutingKey: "sport.#"})
	for _, key := range []string{"sport.tennis", "weather.today", "sport.football.cup"} {
		m := &transport.Message{Body: []byte("about " + key), ContentType: "text/plain"}
		ch.Publish(ctx, m, "news", key, transport.PublishOptions{})
	}

	got := 0
	ch.Qos(ctx, 10)
	ch.Consume(ctx, transport.ConsumeOptions{Queue: "sport"}, func(m *transport.Message) {
		fmt.Printf("%s: %s\n", m.DeliveryInfo.RoutingKey, m.Body)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		if got++; got == 2 {
			h.Stop()
		}
	})
	if err := h.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// sport.tennis: about sport.tennis
	// sport.football.cup: about sport.football.cup
}
