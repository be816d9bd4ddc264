package redis

import (
	"context"
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// conformanceFeatures are what the Redis transport does, on one node and
// on a cluster.
var conformanceFeatures = transporttest.Features{
	Topic:           true,
	TopicKombu:      true,
	Fanout:          true,
	FanoutPubSub:    true,
	NotEquivalent:   true,
	RestoreOnClose:  true,
	RedeliveredFlag: true,
	Priorities:      transporttest.LowerFirst,
	Timestamp:       true,
}

// TestConformance runs the transport conformance suite against Redis.
// Every test gets a global_keyprefix of its own, whose keys are deleted
// afterwards (Kombu's queue_delete leaves unbound queues in Redis).
func TestConformance(t *testing.T) {
	raw := redisURL(t)
	transporttest.Run(t, conformanceFeatures, func(t *testing.T, h *hub.Hub) transport.Conn {
		prefix := uniq("conf") + ":"
		tr, err := New(configFromURL(t, raw, map[string]any{"global_keyprefix": prefix}))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tr.Dial(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		rdb := tr.o.newClient()
		t.Cleanup(func() {
			ctx := context.Background()
			keys, _ := rdb.Keys(ctx, prefix+"*").Result()
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
			rdb.Close()
		})
		return conn
	})
}
