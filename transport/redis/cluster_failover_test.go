package redis

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/testbroker/rediscluster"
	"github.com/kombu-go/kombu/transport"
)

// TestClusterMasterFailover kills (SIGKILL) the master that holds a queue
// while messages stream through it, on a private 6-node cluster: its
// replica is promoted, the consumer's socket follows the slot to the new
// master by itself, and, with publish_wait_replicas=1, nothing published
// is lost. The killed node is restarted once the failover is over, so that
// the new master has a replica again (WAIT needs one).
//
// One trial by default; KOMBU_CLUSTER_FAILOVER_TRIALS=N runs N on the same
// cluster (KOMBU_FAULT_HEAVY=1: 10), each with a queue of its own, so that
// the kills go round the masters (failoverTrials).
func TestClusterMasterFailover(t *testing.T) {
	for _, res := range clusterFaultTrials(t, 1, 3000, killMaster) {
		if res.lost > 0 {
			t.Errorf("trial %d: lost %d of %d messages published with publish_wait_replicas=1",
				res.trial, res.lost, res.published)
		}
	}
}

// TestClusterMasterFailoverNoWait is the same without WAIT: a message the
// master stored and never replicated before it died is lost. The loss is
// logged, not asserted (README, "Scaling out"); what is asserted is that
// the consumer resumed on the new master.
func TestClusterMasterFailoverNoWait(t *testing.T) {
	clusterFaultTrials(t, 0, 3000, killMaster)
}

// TestClusterSlotMigration moves the slot of a queue to another master
// while messages stream through it (CLUSTER SETSLOT MIGRATING/IMPORTING,
// MIGRATE of the slot's keys, SETSLOT NODE), with pauses in the states
// where the source answers ASK and then MOVED: the consumer's socket
// follows the queue to its new master, and nothing is lost.
func TestClusterSlotMigration(t *testing.T) {
	for _, res := range clusterFaultTrials(t, 0, 3000, migrateSlot) {
		if res.lost > 0 {
			t.Errorf("trial %d: lost %d of %d messages across the slot's migration", res.trial, res.lost, res.published)
		}
	}
}

// disruption is what a fault trial does to the queue's master once a third
// of the messages are published: gone is called once the master no longer
// serves the queue; it returns how long until another master did.
type disruption func(ctx context.Context, t *testing.T, rc *rediscluster.Cluster, master rediscluster.Node,
	key string, gone func()) time.Duration

// killMaster SIGKILLs the master, waits for its replica to take over, and
// restarts it (it rejoins as a replica, so that WAIT finds one again).
func killMaster(ctx context.Context, t *testing.T, rc *rediscluster.Cluster, master rediscluster.Node,
	_ string, gone func()) time.Duration {
	start := time.Now()
	rc.Kill(master)
	gone()
	nm, err := rc.WaitFailover(ctx, master)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("%s killed; %s serves its slots after %v", master.Addr, nm.Addr, took.Round(time.Millisecond))
	rc.Restart(master)
	return took
}

// failoverResult is what one failover trial measured.
type failoverResult struct {
	trial                            int
	published, delivered, lost, dups int
	retries                          int           // publishes that failed and were sent again
	failover                         time.Duration // from the kill to a replica serving the slots (WaitFailover)
	// recovery is from the kill to the consumer's first delivery of a
	// message first sent after the kill: one the new master stored.
	recovery time.Duration
	// resumed is from the kill to the publish of that message returning
	// (with WAIT, the new master needs a replica first: the restarted node).
	resumed time.Duration
	// gap is the longest time without a delivery while messages flowed.
	gap time.Duration
}

// failoverTrials is how many trials each failover test runs: 1, or
// KOMBU_CLUSTER_FAILOVER_TRIALS, or 10 with KOMBU_FAULT_HEAVY=1.
func failoverTrials(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("KOMBU_CLUSTER_FAILOVER_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KOMBU_CLUSTER_FAILOVER_TRIALS=%q: want a positive number", v)
		}
		return n
	}
	if v := os.Getenv("KOMBU_FAULT_HEAVY"); v != "" && v != "0" {
		return 10
	}
	return 1
}

// clusterFaultTrials starts a private cluster and runs failoverTrials
// trials of disrupt on it, then logs their figures and the load average.
func clusterFaultTrials(t *testing.T, waitReplicas, total int, disrupt disruption) []failoverResult {
	if testing.Short() {
		t.Skip("a failover takes several seconds")
	}
	n := failoverTrials(t)
	rc := rediscluster.Start(t)
	load := loadAverage()
	var all []failoverResult
	for i := 1; i <= n; i++ {
		all = append(all, clusterFaultTrial(t, rc, i, waitReplicas, total, 1, disrupt))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "publish_wait_replicas=%d, %d trials (load average %s before, %s after):", waitReplicas, n, load, loadAverage())
	for _, r := range all {
		fmt.Fprintf(&b, "\n  trial %2d: published %d, lost %d, duplicated %d, publish retries %d; failover %v, "+
			"first publish after the disruption stored %v after it and delivered %v after it, "+
			"longest pause in deliveries %v",
			r.trial, r.published, r.lost, r.dups, r.retries, r.failover.Round(time.Millisecond),
			r.resumed.Round(time.Millisecond), r.recovery.Round(time.Millisecond), r.gap.Round(time.Millisecond))
	}
	t.Log(b.String())
	return all
}

// loadAverage returns the 1-, 5- and 15-minute load averages of
// /proc/loadavg, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// clusterFaultTrial streams total messages through one queue of rc, one
// by one or in PublishBatch batches of batch, disrupts the queue's master
// after a third of them were published (a kill and failover, a slot
// migration), and counts what the consumer received.
func clusterFaultTrial(t *testing.T, rc *rediscluster.Cluster, trial, waitReplicas, total, batch int, disrupt disruption) failoverResult {
	prefix := uniq("cfo") + ":"
	cfg := clusterURLConfig(t, rc.URL(), map[string]any{
		"global_keyprefix": prefix, "publish_wait_replicas": waitReplicas, "visibility_timeout": 10,
	})
	cfg.Logger = testLogger(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	q := "foq"
	if trial > 1 {
		q += strconv.Itoa(trial) // another slot, most likely another master
	}
	master, err := rc.MasterOf(prefix + "{" + q + "}")
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t)
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cons, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Qos(ctx, 50); err != nil {
		t.Fatal(err)
	}
	// firstAfter is the number of the first message whose first publish
	// started once the killed master was gone (-1 until then): it and every
	// later one can only come from the new master.
	var firstAfter atomic.Int64
	firstAfter.Store(-1)
	var mu sync.Mutex
	seen := make(map[string]int)
	var afterKill int
	var killedAt, recoveredAt, last time.Time
	var gap time.Duration
	var killed atomic.Bool
	if _, err := cons.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		now := time.Now()
		n, _ := strconv.Atoi(string(m.Body))
		mu.Lock()
		seen[string(m.Body)]++
		if !last.IsZero() {
			gap = max(gap, now.Sub(last))
		}
		last = now
		if killed.Load() {
			afterKill++
		}
		if f := firstAfter.Load(); f >= 0 && int64(n) >= f && recoveredAt.IsZero() {
			recoveredAt = now
		}
		mu.Unlock()
		cons.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}
	pub, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sent, retries, resumedAt atomic.Int64 // resumedAt: UnixNano when message firstAfter was stored
	var gone atomic.Bool                      // the killed master's process is gone
	pubErrs := make(chan error, 1)
	go func() { // joined below (pubErrs)
		for i := 0; i < total; i += batch {
			n := min(batch, total-i)
			if gone.Load() {
				firstAfter.CompareAndSwap(-1, int64(i))
			}
			for {
				err := publishRange(ctx, pub, q, i, n)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					pubErrs <- err
					return
				}
				retries.Add(1)
				time.Sleep(50 * time.Millisecond) // at least once: publish again
			}
			if int64(i) == firstAfter.Load() {
				resumedAt.Store(time.Now().UnixNano())
			}
			sent.Add(int64(n))
			time.Sleep(time.Duration(n) * time.Millisecond)
		}
		pubErrs <- nil
	}()
	for sent.Load() < int64(total/3) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	killed.Store(true)
	failover := disrupt(ctx, t, rc, master, prefix+"{"+q+"}", func() { gone.Store(true) })
	t.Logf("trial %d: queue %s, master %s", trial, q, master.Addr)
	if err := <-pubErrs; err != nil {
		t.Fatalf("trial %d: publishing stopped: %v", trial, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	res := failoverResult{trial: trial, published: total, delivered: len(seen), retries: int(retries.Load()),
		failover: failover, gap: gap}
	if !recoveredAt.IsZero() {
		res.recovery = recoveredAt.Sub(killedAt)
	}
	if r := resumedAt.Load(); r != 0 {
		res.resumed = time.Unix(0, r).Sub(killedAt)
	}
	for i := range total {
		switch c := seen[strconv.Itoa(i)]; {
		case c == 0:
			res.lost++
		case c > 1:
			res.dups += c - 1
		}
	}
	t.Logf("trial %d: publish_wait_replicas=%d: published %d, delivered %d distinct, lost %d, duplicated %d; "+
		"%d deliveries after the disruption; the first message sent after it stored %v after it, delivered %v after it",
		trial, waitReplicas, total, res.delivered, res.lost, res.dups, afterKill, res.resumed.Round(time.Millisecond),
		res.recovery.Round(time.Millisecond))
	if afterKill == 0 {
		t.Errorf("trial %d: the consumer delivered nothing after the disruption", trial)
	}
	if recoveredAt.IsZero() {
		t.Errorf("trial %d: the consumer delivered no message sent after the kill (the first was #%d)",
			trial, firstAfter.Load())
	}
	return res
}

// publishRange publishes messages "first" to "first+n-1" to queue q: with
// Publish when n is 1, else in one PublishBatch.
func publishRange(ctx context.Context, ch transport.Channel, q string, first, n int) error {
	if n == 1 {
		return ch.Publish(ctx, textMsg(strconv.Itoa(first)), "", q, transport.PublishOptions{})
	}
	reqs := make([]PublishRequest, n)
	for j := range reqs {
		reqs[j] = PublishRequest{Message: textMsg(strconv.Itoa(first + j)), RoutingKey: q}
	}
	return ch.(*Channel).PublishBatch(ctx, reqs)
}

// migrateSlot moves key's slot from master to another master.
func migrateSlot(ctx context.Context, t *testing.T, rc *rediscluster.Cluster, master rediscluster.Node,
	key string, gone func()) time.Duration {
	start := time.Now()
	var dst rediscluster.Node
	for _, n := range rc.Nodes() {
		if n.Role == rediscluster.Master && n.Addr != master.Addr {
			dst = n
			break
		}
	}
	slot := rediscluster.Slot(key)
	node := func(addr string) *goredis.Client {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		return c
	}
	src, to := node(master.Addr), node(dst.Addr)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(to.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", master.ID).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.ID).Err())
	time.Sleep(300 * time.Millisecond) // migrating, keys still on the source
	keys, err := src.ClusterGetKeysInSlot(ctx, slot, 1000).Result()
	must(err)
	host, port, _ := strings.Cut(dst.Addr, ":")
	if len(keys) > 0 {
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(src.Do(ctx, args...).Err())
	}
	time.Sleep(1500 * time.Millisecond) // the source answers ASK (longer than a wait)
	for _, n := range rc.Nodes() {
		if n.Role == rediscluster.Master {
			must(node(n.Addr).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dst.ID).Err())
		}
	}
	gone()
	t.Logf("slot %d (%d keys) moved from %s to %s", slot, len(keys), master.Addr, dst.Addr)
	return time.Since(start)
}

// clusterURLConfig is the transport.Config of a redis+cluster URL.
func clusterURLConfig(t testing.TB, raw string, opts map[string]any) transport.Config {
	t.Helper()
	rest, ok := strings.CutPrefix(raw, "redis+cluster://")
	if !ok {
		t.Fatalf("%q: want redis+cluster://host:port,...", raw)
	}
	hosts, _, _ := strings.Cut(rest, "/")
	cfg := transport.Config{Scheme: "redis+cluster", Hostname: hosts, Options: map[string]any{}}
	for k, v := range opts {
		cfg.Options[k] = v
	}
	return cfg
}
