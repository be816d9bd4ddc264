package redis

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// TestClusterIdleCost measures what idle queues cost a cluster: the
// commands every node processed per second (INFO's
// total_commands_processed, summed over the nodes), first with no
// consumer, then with one channel consuming 100 idle queues after a
// 25 s warm-up. It runs only when KOMBU_CLUSTER_IDLE_COST gives the
// measuring window: at least 100 s (unacked_restore_interval times
// unacked_restore_throttle) for the window to hold a sweep, e.g. 200s;
// it takes about 25 s plus twice that. It fails when the idle queues
// cost more than one command per queue per 25 s on top of the cluster's
// own traffic: a consume socket per queue pinged each queue every 25 s,
// and its sweeps cost four commands per queue; the node sockets ping one
// connection per master, and a sweep of an empty index is one command.
func TestClusterIdleCost(t *testing.T) {
	window, err := time.ParseDuration(os.Getenv("KOMBU_CLUSTER_IDLE_COST"))
	if err != nil || window <= 0 {
		t.Skip("KOMBU_CLUSTER_IDLE_COST (a duration, e.g. 60s) not set: the idle-cost measurement takes minutes")
	}
	const queues = 100
	prefix := uniq("cidle") + ":"
	ctx := context.Background()
	cfg := clusterConfig(t, map[string]any{"global_keyprefix": prefix})
	cc := clusterClient(t, cfg)
	t.Cleanup(func() { cleanCluster(cc, prefix) })
	nodes := clusterNodeAddrs(t, cc, false)
	total := func() int64 {
		var n int64
		for _, addr := range nodes {
			c := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
			info, err := c.Info(ctx, "stats").Result()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
					x, _ := strconv.ParseInt(v, 10, 64)
					n += x - 1 // this INFO
				}
			}
		}
		return n
	}
	rate := func() float64 {
		a := total()
		time.Sleep(window)
		return float64(total()-a) / window.Seconds()
	}
	base := rate()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tr.Dial(ctx, startHub(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range queues {
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: fmt.Sprintf("iq%03d", i)}, func(*transport.Message) {}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(25 * time.Second)
	idle := rate()
	t.Logf("%d nodes, window %v: %.1f commands/s with no consumer, %.1f with one channel consuming %d idle queues "+
		"(%.2f per queue per minute on top)", len(nodes), window, base, idle, queues, (idle-base)*60/queues)
	if limit := base + queues/25.0; idle > limit {
		t.Errorf("%d idle queues cost %.1f commands/s, more than %.1f (one per queue per 25 s on top of %.1f)",
			queues, idle, limit, base)
	}
}
