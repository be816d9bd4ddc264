package faulttest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kombu-go/kombu/internal/testbroker/rediscluster"
)

// TestFaultKillCluster is TestFaultKill against a Redis Cluster: the run's
// shared 6-node cluster (KOMBU_TEST_REDIS_CLUSTER_URL, 3 masters), with
// the transport's cluster layout, a consume socket per queue on the
// queue's master, and a sweep per queue. The consumer process is killed
// with SIGKILL 20–400 ms after it started consuming, restarted each time,
// while messages are published to queues spread over every master; then a
// last consumer drains. The judgement is TestFaultKill's: nothing lost, at
// most kills × (prefetch + 1) duplicates, and no message key left on any
// master.
//
// Cases: prefetch 1 and 100, trickle and backlog, on 6 queues (heavy: 6
// and 50), which the test checks cover all three masters; 10 kills per
// case (heavy: 50). The nodes are
// not disturbed: other packages use the shared cluster at the same time
// (master failover is transport/redis's TestClusterMasterFailover, on a
// private cluster).
func TestFaultKillCluster(t *testing.T) {
	rc := rediscluster.Shared(t)
	sc := runScale(t)
	nodes := rc.Nodes()
	for _, prefetch := range []int{1, 100} {
		t.Run(fmt.Sprintf("prefetch%d", prefetch), func(t *testing.T) {
			for _, mode := range []string{"trickle", "backlog"} {
				t.Run(mode, func(t *testing.T) {
					for _, nq := range sc.clusterQueues {
						t.Run(fmt.Sprintf("queues%d", nq), func(t *testing.T) {
							checkSpread(t, nodes, nq)
							killCase(t, rc.URL(), sc.clusterKills, prefetch, mode, nq)
						})
					}
				})
			}
		})
	}
}

// checkSpread fails the test unless the first nq queues of newEnv (fq0000,
// fq0001, ...) have their slots on every master of nodes.
func checkSpread(t *testing.T, nodes []rediscluster.Node, nq int) {
	t.Helper()
	count := map[string]int{}
	var masters []string
	for _, n := range nodes {
		if n.Role == rediscluster.Master {
			masters = append(masters, n.Addr)
			count[n.Addr] = 0
		}
	}
	for i := range nq {
		slot := rediscluster.Slot(fmt.Sprintf("{fq%04d}", i))
		for _, n := range nodes {
			if n.Role == rediscluster.Master && slices.ContainsFunc(n.Slots, func(r rediscluster.SlotRange) bool {
				return slot >= r.First && slot <= r.Last
			}) {
				count[n.Addr]++
			}
		}
	}
	for _, m := range masters {
		if count[m] == 0 {
			t.Fatalf("the %d queues leave master %s without a queue (queues per master: %v): the test would not "+
				"spread over the cluster", nq, m, count)
		}
	}
	t.Logf("queues per master: %v", count)
}
