package rediscluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// failoverBound is how long a failover may take before the test fails. It
// is not a speed target: with cluster-node-timeout 2000 a failover takes a
// few seconds (measured in the README), and this bound only keeps a
// cluster that never fails over from hanging the run.
const failoverBound = 20 * time.Second

// checkTopology checks what a ready cluster must look like: six nodes that
// answer with a PID, three masters serving all 16384 slots without
// overlap, and one replica for each master.
func checkTopology(t *testing.T, nodes []Node) {
	t.Helper()
	if len(nodes) != 6 {
		t.Fatalf("%d nodes, want 6: %+v", len(nodes), nodes)
	}
	var covered [SlotCount]int
	replicas := map[string]int{}
	var masters []Node
	for _, n := range nodes {
		if n.PID == 0 || n.Failed {
			t.Errorf("node %s: PID %d, failed %v; want a live node", n.Addr, n.PID, n.Failed)
		}
		switch n.Role {
		case Master:
			masters = append(masters, n)
			for _, sr := range n.Slots {
				for s := sr.First; s <= sr.Last; s++ {
					covered[s]++
				}
			}
		case Replica:
			replicas[n.MasterID]++
		}
	}
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3: %+v", len(masters), nodes)
	}
	for s, n := range covered {
		if n != 1 {
			t.Fatalf("slot %d is served by %d masters, want 1", s, n)
		}
	}
	for _, m := range masters {
		if replicas[m.ID] != 1 {
			t.Errorf("master %s has %d replicas, want 1", m.Addr, replicas[m.ID])
		}
	}
}

// TestCluster starts a private cluster and checks it, then kills a master,
// waits for its replica to take over, and restarts the killed node.
func TestCluster(t *testing.T) {
	c := Start(t)
	nodes := c.Nodes()
	checkTopology(t, nodes)
	for _, n := range nodes {
		t.Logf("%-8s %s pid %d slots %v", n.Role, n.Addr, n.PID, n.Slots)
	}

	var masters []string
	for _, n := range nodes {
		if n.Role == Master {
			masters = append(masters, n.Addr)
		}
	}
	if want := "redis+cluster://" + strings.Join(masters, ","); c.URL() != want {
		t.Errorf("URL() = %q, want the masters in slot order: %q", c.URL(), want)
	}

	t.Run("keyslot", func(t *testing.T) { checkKeyslot(t, nodes[0].Addr) })

	// The master of a key, and a write to it that its replica has before
	// the kill (WAIT), so the failover can be seen to keep it.
	const key = "{rediscluster-test}.failover"
	old, err := c.MasterOf(key)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(old.Slots, func(sr SlotRange) bool { return sr.First <= Slot(key) && Slot(key) <= sr.Last }) {
		t.Fatalf("MasterOf(%q) = %s, whose slots %v lack slot %d", key, old.Addr, old.Slots, Slot(key))
	}
	var replica Node
	for _, n := range nodes {
		if n.Role == Replica && n.MasterID == old.ID {
			replica = n
		}
	}
	cn, err := dial(context.Background(), old.Addr)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := cn.pipeline(context.Background(), []string{"SET", key, "kept"}, []string{"WAIT", "1", "5000"})
	cn.close()
	if err != nil || vs[1].Int != 1 {
		t.Fatalf("SET and WAIT on %s: %v %v (want 1 replica to acknowledge)", old.Addr, vs, err)
	}

	begin := time.Now()
	c.Kill(old)
	killed := time.Now()
	if _, err := query(context.Background(), old.Addr, "PING"); err == nil {
		t.Fatalf("%s still answers after Kill", old.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), failoverBound)
	defer cancel()
	successor, err := c.WaitFailover(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover: %s (pid %d) killed in %v, %s serves its slots %v after the kill",
		old.Addr, old.PID, killed.Sub(begin).Round(time.Millisecond), successor.Addr,
		time.Since(killed).Round(time.Millisecond))
	if successor.Addr != replica.Addr {
		t.Errorf("new master %s, want %s, the killed master's replica", successor.Addr, replica.Addr)
	}
	if got, err := c.MasterOf(key); err != nil || got.Addr != successor.Addr {
		t.Errorf("after the failover MasterOf(%q) = %s, %v; want %s", key, got.Addr, err, successor.Addr)
	}
	if v, err := query(context.Background(), successor.Addr, "GET", key); err != nil || v.String() != "kept" {
		t.Errorf("GET %s on the new master: %q, %v; want the value written before the kill", key, v.String(), err)
	}

	begin = time.Now()
	back := c.Restart(old)
	t.Logf("restart: %s rejoined as a %s in %v", back.Addr, back.Role, time.Since(begin).Round(time.Millisecond))
	if back.Role != Replica || back.MasterID != successor.ID {
		t.Errorf("restarted %s is a %s of %q; want a replica of %s (%s)", back.Addr, back.Role, back.MasterID, successor.Addr, successor.ID)
	}
	if back.PID == 0 || back.PID == old.PID {
		t.Errorf("restarted %s has PID %d (before: %d); want a new process", back.Addr, back.PID, old.PID)
	}
	after := c.Nodes()
	checkTopology(t, after)
	if v, err := query(context.Background(), back.Addr, "READONLY"); err != nil || v.String() != "OK" {
		t.Fatalf("READONLY on %s: %v %v", back.Addr, v, err)
	}
}

// TestShared checks the run's shared cluster, read-only: it is ready and
// Slot agrees with it. Kill is refused on it.
func TestShared(t *testing.T) {
	c := Shared(t)
	nodes := c.Nodes()
	checkTopology(t, nodes)
	checkKeyslot(t, nodes[len(nodes)-1].Addr)
	n, err := c.MasterOf(fmt.Sprintf("{%s}", t.Name()))
	if err != nil || n.Role != Master {
		t.Errorf("MasterOf: %+v, %v; want a master", n, err)
	}
}
