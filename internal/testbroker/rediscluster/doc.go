// Package rediscluster gives tests a real 6-node Redis Cluster (3 masters,
// 3 replicas) on 127.0.0.1, and the means to find, kill and restart its
// nodes (issue 15: the Redis Cluster failover tests).
//
// It is a test helper: any package's _test.go files may import it, and no
// library code may (internal/archtest enforces both).
//
// # The clusters
//
// [Start] starts a private cluster in the test's temporary directory with
// scripts/brokers.sh redis-cluster-start, and stops it when the test ends.
// Each node is a redis-server of its own (cluster-enabled yes, its own
// nodes.conf, cluster-node-timeout 2000, nothing persisted) on a free port
// P whose cluster bus port P+10000 is free too; redis-cli --cluster create
// with --cluster-replicas 1 joins them. Start returns once every node says
// cluster_state:ok, knows all six nodes and sees all 16384 slots served, and
// every replica is in sync with its master. A test that kills or restarts
// nodes uses a private cluster.
//
// [Shared] returns the cluster scripts/test.sh starts once for the whole run
// (KOMBU_TEST_REDIS_CLUSTER_URL, KOMBU_TEST_REDIS_CLUSTER_DIR). Other
// packages use it at the same time, so its nodes are never killed or
// restarted (Kill and Restart fail the test), and a test keeps to keys of
// its own.
//
// Without redis-server, redis-cli or scripts/brokers.sh (found through
// KOMBU_TEST_REDIS_CTL, else above the working directory), or without the
// shared cluster's variables, the test skips and says why; with
// KOMBU_REQUIRE_BROKERS=1 it fails instead.
//
// # Nodes, slots and failover
//
// [Cluster.Nodes] lists the nodes as the live cluster sees them (address,
// role, PID, slots). [Slot] computes a key's hash slot as Redis does
// (CRC16-XMODEM modulo 16384, of the hash tag when the key has one), and
// [Cluster.MasterOf] asks the cluster which master serves a key. A
// failover test takes a master, [Cluster.Kill]s it (SIGKILL of the process
// brokers.sh started for that node, nothing else), [Cluster.WaitFailover]s
// until a replica serves its slots and the cluster has settled, and may
// [Cluster.Restart] it: it rejoins as a replica of its successor.
//
// The helper queries the nodes over short-lived RESP connections of its own
// (internal/resp); it starts no goroutine that outlives a call.
package rediscluster
