package filesystem

import (
	"context"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// features is what the filesystem transport promises. Priorities: Kombu's
// filesystem transport has none (files are taken oldest first).
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

// openIn dials a transport over dir (in = out) on h; the suite closes it.
func openIn(t *testing.T, h *hub.Hub, dir string, extra map[string]any) transport.Conn {
	t.Helper()
	c, err := newTransport(t, dir, dir, extra).Dial(context.Background(), h)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// TestConformance runs the suite with the folder watched (inotify on
// Linux, kqueue on macOS and FreeBSD).
func TestConformance(t *testing.T) {
	transporttest.Run(t, features, func(t *testing.T, h *hub.Hub) transport.Conn {
		return openIn(t, h, testDir(t), nil)
	})
}

// TestConformancePolling runs the suite with the watch off: Kombu's
// polling every polling_interval, here 10ms.
func TestConformancePolling(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	f := features
	f.Timeout = 20 * time.Second
	transporttest.Run(t, f, func(t *testing.T, h *hub.Hub) transport.Conn {
		return openIn(t, h, testDir(t), map[string]any{"watch": false, "polling_interval": 0.01})
	})
}
