package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/testbroker/rediscluster"
)

// TestBenchClusterBatchedPublish runs bench --batch on the shared Redis
// Cluster: the batched publish comparison spreads each publisher's batches
// over a queue on each of the three masters, reports it (JSON and text),
// and leaves no key behind.
func TestBenchClusterBatchedPublish(t *testing.T) {
	c := rediscluster.Shared(t)
	prefix := uniqueName("kombu-cbp") + "."
	url := withQuery(c.URL(), "global_keyprefix="+prefix)
	code, stdout, stderr := runCLI(t, "bench", "--url", url, "--messages", "600", "--batch", "50", "--latency", "0",
		"--idle", "0", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var res struct {
		Rounds    float64 `json:"publish_rounds_per_s"`
		Ready     float64 `json:"publish_baseline_per_s"`
		VsReady   float64 `json:"publish_vs_baseline"`
		Queues    int     `json:"publish_rounds_queues"`
		Masters   int     `json:"publish_rounds_masters"`
		Transport string  `json:"transport"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	if res.Queues != 3 || res.Masters != 3 || res.Rounds <= 0 || res.Ready <= 0 || res.VsReady <= 0 {
		t.Errorf("batched publish comparison: %+v", res)
	}
	code, stdout, stderr = runCLI(t, "bench", "--url", url, "--messages", "600", "--batch", "50", "--latency", "0",
		"--idle", "0")
	if code != 0 || !strings.Contains(stdout, "(batches of 50, each over 3 queues on 3 masters)") {
		t.Errorf("bench report: exit %d: %s\n%s", code, stderr, stdout)
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(strings.TrimPrefix(c.URL(), "redis+cluster://"), ",")})
	defer rdb.Close()
	ctx := context.Background()
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, err := n.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			t.Errorf("%s: keys left: %v", n.Options().Addr, keys)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
