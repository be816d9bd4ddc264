package memory_test

import (
	"context"
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/memory"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// features is what the memory transport promises.
var features = transporttest.Features{
	Topic:           true,
	TopicKombu:      true,
	Fanout:          true,
	Headers:         true,
	NotEquivalent:   true,
	RestoreOnClose:  true,
	RedeliveredFlag: true,
	Returns:         true,
	Timestamp:       true,
}

func open(t *testing.T, h *hub.Hub) transport.Conn {
	t.Helper()
	tr, err := memory.New(transport.Config{Scheme: "memory"})
	if err != nil {
		t.Fatalf("memory.New: %v", err)
	}
	c, err := tr.Dial(context.Background(), h)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

func TestConformance(t *testing.T) { transporttest.Run(t, features, open) }
