package amqp

import (
	"context"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// TestConformance runs the shared transport suite against RabbitMQ: AMQP
// topic wildcards, real (stored) fanout, headers exchanges, higher
// priorities first, mandatory returns.
func TestConformance(t *testing.T) {
	raw := brokerURL(t)
	features := transporttest.Features{
		Topic:           true,
		TopicKombu:      false,
		Fanout:          true,
		FanoutPubSub:    false,
		Headers:         true,
		NotEquivalent:   true,
		RestoreOnClose:  true,
		RedeliveredFlag: true,
		Priorities:      transporttest.HigherFirst,
		Returns:         true,
		Timestamp:       true,
		Timeout:         20 * time.Second,
	}
	transporttest.Run(t, features, func(t *testing.T, h *hub.Hub) transport.Conn {
		cfg := configFromURL(t, raw)
		cfg.Options["connection_name"] = uniq("conformance")
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := tr.Dial(ctx, h)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		return c
	})
}
