package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// clusterConfig returns the transport.Config of KOMBU_TEST_REDIS_CLUSTER_URL
// (redis+cluster://h:p,h:p,...) with opts, or skips (fails with
// KOMBU_REQUIRE_BROKERS=1).
func clusterConfig(t testing.TB, opts map[string]any) transport.Config {
	t.Helper()
	return clusterURLConfig(t, transporttest.BrokerURL(t, "KOMBU_TEST_REDIS_CLUSTER_URL"), opts)
}

// clusterClient is a go-redis client of the test cluster, closed with t.
func clusterClient(t testing.TB, cfg transport.Config) *goredis.ClusterClient {
	t.Helper()
	o, err := parseOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := o.newClusterClient()
	t.Cleanup(func() { c.Close() })
	return c
}

// cleanCluster deletes the keys under prefix on every master.
func cleanCluster(c *goredis.ClusterClient, prefix string) {
	ctx := context.Background()
	c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		keys, _ := n.Keys(ctx, prefix+"*").Result()
		for _, k := range keys {
			n.Del(ctx, k)
		}
		return nil
	})
}

// TestClusterConformance runs the transport conformance suite against a
// Redis Cluster.
func TestClusterConformance(t *testing.T) {
	clusterConfig(t, nil)
	transporttest.Run(t, conformanceFeatures, func(t *testing.T, h *hub.Hub) transport.Conn {
		prefix := uniq("cconf") + ":"
		cfg := clusterConfig(t, map[string]any{"global_keyprefix": prefix})
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tr.Dial(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		c := clusterClient(t, cfg)
		t.Cleanup(func() { cleanCluster(c, prefix) })
		return conn
	})
}

// clusterChannel opens a channel on the test cluster under a
// global_keyprefix of its own (deleted with t), with opts; its connection
// closes with t.
func clusterChannel(t testing.TB, prefix string, opts map[string]any) (transport.Channel, *goredis.ClusterClient) {
	t.Helper()
	all := map[string]any{"global_keyprefix": prefix}
	for k, v := range opts {
		all[k] = v
	}
	cfg := clusterConfig(t, all)
	cc := clusterClient(t, cfg)
	t.Cleanup(func() { cleanCluster(cc, prefix) })
	return clusterChannelOn(t, cfg), cc
}

// TestClusterLayout checks the key layout: each queue's lists and records
// carry its hash tag, different queues land on different masters, and an
// acknowledged message leaves no record behind.
func TestClusterLayout(t *testing.T) {
	prefix := uniq("clay") + ":"
	ch, cc := clusterChannel(t, prefix, nil)
	ctx := ctxT(t)
	// Queue names whose slots fall on different masters.
	masters := map[string]string{}
	var queues []string
	for i := 0; len(queues) < 3 && i < 200; i++ {
		q := "q" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + uniq("")
		n, err := cc.MasterForKey(ctx, prefix+"{"+q+"}")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := masters[n.Options().Addr]; ok {
			continue
		}
		masters[n.Options().Addr] = q
		queues = append(queues, q)
	}
	if len(queues) < 3 {
		t.Fatalf("found queues on %d masters, want 3", len(queues))
	}
	got := make(chan *transport.Message, 10)
	for _, q := range queues {
		if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: q}); err != nil {
			t.Fatal(err)
		}
		if err := ch.Publish(ctx, textMsg("to "+q), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
	}
	for range queues {
		m := waitFor(t, got, "a message")
		q := m.DeliveryInfo.Queue
		tag := m.DeliveryInfo.DeliveryTag
		if n, _ := cc.HExists(ctx, prefix+"{"+q+"}:unacked", tag).Result(); !n {
			t.Errorf("no record of %s under {%s}:unacked before the ack", tag, q)
		}
		if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range queues {
		key := prefix + "{" + q + "}:unacked"
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := cc.HLen(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still holds %d records after the acks", key, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestClusterSharedWindow consumes six queues (on three masters) with a
// window smaller than their backlog: the sub-stores share the window, so
// a slot one of them frees must wake the others. The waits block for 30 s
// (brpop_timeout), so a store left asleep would hold the messages past the
// test's deadline.
func TestClusterSharedWindow(t *testing.T) {
	ch, _ := clusterChannel(t, uniq("cwin")+":", map[string]any{"brpop_timeout": 30})
	ctx := ctxT(t)
	if err := ch.Qos(ctx, 4); err != nil {
		t.Fatal(err)
	}
	const perQueue = 40
	queues := []string{"wa", "wb", "wc", "wd", "we", "wf"}
	for _, q := range queues {
		for i := range perQueue {
			if err := ch.Publish(ctx, textMsg(q+strconv.Itoa(i)), "", q, transport.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := consumeAcking(t, ch, queues, len(queues)*perQueue)
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < len(queues)*perQueue {
		select {
		case b := <-got:
			seen[b] = true
		case <-deadline:
			missing := map[string]int{}
			for _, q := range queues {
				for i := range perQueue {
					if !seen[q+strconv.Itoa(i)] {
						missing[q]++
					}
				}
			}
			t.Fatalf("%d of %d messages delivered (missing per queue: %v): a store sleeps while the window has room",
				len(seen), len(queues)*perQueue, missing)
		}
	}
}
