package main

import (
	"context"
	"encoding/json"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/testbroker/rediscluster"
)

// benchClusterSide is one side of bench --json's cluster_scaling.
type benchClusterSide struct {
	Names   []string `json:"queue_names"`
	Masters []string `json:"queue_masters"`
	NMaster int      `json:"masters"`
	Publish float64  `json:"publish_per_s"`
	Consume float64  `json:"consume_per_s"`
	Client  float64  `json:"client_cpu_percent"`
	Server  float64  `json:"server_cpu_percent"`
	Busiest float64  `json:"busiest_node_cpu_percent"`
	Machine float64  `json:"machine_busy_percent"`
}

// TestBenchClusterScaling runs a tiny --cluster-scaling-rounds on the
// shared Redis Cluster, with a global_keyprefix: the queues of the spread
// side are on every master in equal numbers and those of the other side on
// one, as the cluster itself says (rediscluster.MasterOf, CLUSTER KEYSLOT);
// the rates and ratios are consistent; the naive baseline runs on the
// cluster; the idle census counts over every node; no queue key is left.
func TestBenchClusterScaling(t *testing.T) {
	c := rediscluster.Shared(t)
	prefix := uniqueName("kombu-cli") + "."
	url := withQuery(c.URL(), "global_keyprefix="+prefix)
	code, stdout, stderr := runCLI(t, "bench", "--url", url, "--messages", "1200", "--queues", "6", "--busy-queues", "6",
		"--latency", "20", "--idle", "200ms", "--cluster-scaling-rounds", "2", "--cluster-publishers", "3", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var res struct {
		Consume     float64 `json:"consume_per_s"`
		IdleClients int     `json:"idle_redis_clients"`
		IdleNodes   int     `json:"idle_redis_nodes"`
		Baseline    *struct {
			Consume float64 `json:"consume_per_s"`
			P50     float64 `json:"p50_us"`
		} `json:"baseline"`
		CS *struct {
			Rounds       int              `json:"rounds"`
			PerRound     int              `json:"messages_per_round"`
			Queues       int              `json:"queues"`
			Publishers   int              `json:"publishers"`
			Masters      int              `json:"cluster_masters"`
			Nodes        int              `json:"cluster_nodes"`
			Spread       benchClusterSide `json:"spread"`
			One          benchClusterSide `json:"one_master"`
			Consume      float64          `json:"consume_ratio"`
			ConsumeRound []float64        `json:"consume_round_ratios"`
			ConsumeMed   float64          `json:"median_consume_round_ratio"`
			Publish      float64          `json:"publish_ratio"`
			PublishRound []float64        `json:"publish_round_ratios"`
			PublishMed   float64          `json:"median_publish_round_ratio"`
		} `json:"cluster_scaling"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	cs := res.CS
	if cs == nil {
		t.Fatalf("bench --json lacks cluster_scaling: %s", stdout)
	}
	if cs.Rounds != 2 || cs.PerRound != 600 || cs.Queues != 6 || cs.Publishers != 3 || cs.Masters != 3 || cs.Nodes != 6 ||
		len(cs.ConsumeRound) != 2 || len(cs.PublishRound) != 2 {
		t.Errorf("cluster_scaling = %+v", *cs)
	}
	// Where the queues live, asked of the cluster.
	for _, side := range []struct {
		name string
		s    benchClusterSide
		want []int // queues per master, in decreasing order
	}{{"spread", cs.Spread, []int{2, 2, 2}}, {"one master", cs.One, []int{6}}} {
		s := side.s
		if len(s.Names) != 6 || len(s.Masters) != 6 || s.NMaster != len(side.want) {
			t.Fatalf("%s: %d names, %d masters, on %d masters", side.name, len(s.Names), len(s.Masters), s.NMaster)
		}
		per := map[string]int{}
		for i, q := range s.Names {
			n, err := c.MasterOf(prefix + "{" + q + "}")
			if err != nil {
				t.Fatal(err)
			}
			if n.Addr != s.Masters[i] {
				t.Errorf("%s: queue %s is on %s, the bench says %s", side.name, q, n.Addr, s.Masters[i])
			}
			per[n.Addr]++
		}
		counts := slices.Sorted(maps.Values(per))
		slices.Reverse(counts)
		if !slices.Equal(counts, side.want) {
			t.Errorf("%s: queues per master %v, want %v", side.name, per, side.want)
		}
		if s.Publish <= 0 || s.Consume <= 0 || s.Client <= 0 || s.Server <= 0 || s.Busiest <= 0 || s.Busiest > s.Server {
			t.Errorf("%s: rates and CPU %+v", side.name, s)
		}
		if runtime.GOOS == "linux" && (s.Machine <= 0 || s.Machine > 100.001) {
			t.Errorf("%s: machine busy %v%%", side.name, s.Machine)
		}
	}
	if want := cs.Spread.Consume / cs.One.Consume; cs.Consume < want*0.999 || cs.Consume > want*1.001 {
		t.Errorf("consume ratio %v, want spread/one = %v", cs.Consume, want)
	}
	if want := cs.Spread.Publish / cs.One.Publish; cs.Publish < want*0.999 || cs.Publish > want*1.001 {
		t.Errorf("publish ratio %v, want spread/one = %v", cs.Publish, want)
	}
	if cs.ConsumeMed <= 0 || cs.PublishMed <= 0 {
		t.Errorf("median round ratios %v %v", cs.ConsumeMed, cs.PublishMed)
	}
	// The main run: the naive baseline consumed on the cluster, and the
	// idle census counted at least the six consume sockets over six nodes.
	if res.Consume <= 0 || res.Baseline == nil || res.Baseline.Consume <= 0 || res.Baseline.P50 <= 0 {
		t.Errorf("main run: consume %v, baseline %+v", res.Consume, res.Baseline)
	}
	if res.IdleNodes != 6 || res.IdleClients < 6 {
		t.Errorf("idle: %d client connections over %d nodes, want >= 6 over 6", res.IdleClients, res.IdleNodes)
	}
	// Nothing left: the queues' lists and unacked records are deleted.
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(strings.TrimPrefix(c.URL(), "redis+cluster://"), ",")})
	defer rdb.Close()
	ctx := context.Background()
	for _, q := range append(cs.Spread.Names, cs.One.Names...) {
		for _, k := range []string{prefix + "{" + q + "}", prefix + "{" + q + "}:unacked", prefix + "{" + q + "}:unacked_index"} {
			if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
				t.Errorf("EXISTS %s: %d, %v", k, n, err)
			}
		}
	}
	// The text report.
	code, stdout, stderr = runCLI(t, "bench", "--url", url, "--messages", "60", "--queues", "3", "--latency", "0",
		"--idle", "0", "--baseline=false", "--cluster-scaling-rounds", "1")
	if code != 0 || !strings.Contains(stdout, "cluster scaling, 1 alternating rounds of 60 messages a side over 3 busy queues, 4 publishers") ||
		!strings.Contains(stdout, "spread     on 3 of 3 masters") || !strings.Contains(stdout, "one master on 1 of 3 masters") ||
		!strings.Contains(stdout, "spread/one: consume") {
		t.Errorf("bench report: exit %d: %s\n%s", code, stderr, stdout)
	}
}
