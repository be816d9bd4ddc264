package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// TestClusterOneSocketPerMaster checks that the consume sockets of a
// cluster connection share one connection per master (nodesock.go): two
// channels consuming queues spread over every master hold exactly one
// tracking connection on each master, each queue's socket is a member of
// its slot's master's node socket, every queue delivers, and the node
// sockets close with their last member.
func TestClusterOneSocketPerMaster(t *testing.T) {
	prefix := uniq("cnode") + ":"
	name := strings.TrimSuffix(prefix, ":")
	cfg := clusterConfig(t, map[string]any{"global_keyprefix": prefix, "client_name": name})
	cc := clusterClient(t, cfg)
	t.Cleanup(func() { cleanCluster(cc, prefix) })
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	conn, err := tr.Dial(ctx, startHub(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := conn.(*Conn)

	// 24 queues, each consumed by both channels: every master holds some.
	var queues []string
	for i := range 24 {
		queues = append(queues, fmt.Sprintf("nq%d", i))
	}
	var mu sync.Mutex
	got := map[string]int{}
	var chans []transport.Channel
	for range 2 {
		ch, err := conn.Channel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
		for _, q := range queues {
			if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q, NoAck: true}, func(m *transport.Message) {
				mu.Lock()
				got[string(m.Body)]++
				mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	masters := map[string]bool{}
	for _, q := range queues {
		addr, err := c.topo.masterOf(ctx, slotOf(prefix+"{"+q+"}"), false)
		if err != nil {
			t.Fatal(err)
		}
		masters[addr] = true
	}
	if len(masters) < 3 {
		t.Fatalf("the queues hash to %d masters, want 3", len(masters))
	}
	for _, q := range queues {
		if err := chans[0].Publish(ctx, textMsg(q), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(queues) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d queues delivered", n, len(queues))
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	for q, n := range got {
		if n != 1 {
			t.Errorf("queue %s: delivered %d times", q, n)
		}
	}
	mu.Unlock()

	// The hub's view: one node socket per master, every member on its
	// queue's master.
	var nodes []string
	var wrong []string
	members := 0
	h := c.h
	if err := h.Call(ctx, func() {
		for addr, n := range c.mp.nodes {
			nodes = append(nodes, addr)
			for _, m := range n.members {
				members++
				want, _ := c.topo.masterOf(context.Background(), m.st.slot(), false)
				if want != addr || m.node != n {
					wrong = append(wrong, fmt.Sprintf("%s on %s (master %s)", m.st.o.queue, addr, want))
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != len(masters) {
		t.Errorf("%d node sockets (%v), want one per master: %d", len(nodes), nodes, len(masters))
	}
	if members != 2*len(queues) || len(wrong) > 0 {
		t.Errorf("%d members, want %d; on the wrong node: %v", members, 2*len(queues), wrong)
	}
	// The broker's view: on each master, exactly one connection of this
	// client name tracks keys (go-redis's request connections do not).
	for addr := range masters {
		nc := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
		list, err := nc.ClientList(ctx).Result()
		nc.Close()
		if err != nil {
			t.Fatal(err)
		}
		tracking := 0
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name="+name+" ") && trackingFlag(line) {
				tracking++
			}
		}
		if tracking != 1 {
			t.Errorf("master %s: %d tracking connections named %s, want 1", addr, tracking, name)
		}
	}
	for _, ch := range chans {
		if err := ch.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var left int
	h.Call(ctx, func() { left = len(c.mp.nodes) })
	if left != 0 {
		t.Errorf("%d node sockets left open after every channel closed", left)
	}
}

// trackingFlag reports whether a CLIENT LIST line's flags include t
// (CLIENT TRACKING on).
func trackingFlag(line string) bool {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "flags="); ok {
			return strings.Contains(v, "t")
		}
	}
	return false
}

// TestClusterDormantQueue checks that an idle queue's consume socket sends
// nothing while idle, still delivers the next message (through Redis's
// invalidations), keeps its node socket (never redialled), leaves no
// record behind once the message is acked, and that its delivering hash
// expires by itself (no lease covers it) and is deleted on close.
func TestClusterDormantQueue(t *testing.T) {
	prefix := uniq("cdorm") + ":"
	ch, cc := clusterChannel(t, prefix, map[string]any{"brpop_timeout": 0.2, "visibility_timeout": 2})
	ctx := ctxT(t)
	rch := ch.(*Channel)
	h := rch.st.c.h
	got := make(chan *transport.Message, 1)
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "dq"}, func(m *transport.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	type view struct {
		shared, ready bool
		inFlight      int
		seq           uint64
		clientID      int64
		id            string
	}
	state := func() (v view) {
		if err := h.Call(ctx, func() {
			st := rch.st.group.subs["dq"]
			if st == nil || st.cons == nil {
				return
			}
			s := st.cons
			v = view{shared: s.shared, ready: s.ready, inFlight: len(s.exp), seq: st.seq, id: st.id}
			if s.node != nil {
				v.clientID = s.node.clientID
			}
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	deadline := time.Now().Add(10 * time.Second)
	for v := state(); !v.ready || v.inFlight > 0; v = state() {
		if time.Now().After(deadline) {
			t.Fatalf("the idle queue's socket did not settle: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := state()
	if !before.shared {
		t.Fatal("the consume socket of a cluster queue is not a member of a node socket")
	}
	time.Sleep(1500 * time.Millisecond) // several brpop_timeouts and watchdog ticks
	if idle := state(); idle.seq != before.seq || idle.inFlight != 0 {
		t.Fatalf("the idle queue sent consume scripts: seq %d then %d, %d in flight", before.seq, idle.seq, idle.inFlight)
	}
	if err := ch.Publish(ctx, textMsg("wake"), "", "dq", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m := waitFor(t, got, "the message published to an idle queue")
	if string(m.Body) != "wake" {
		t.Fatalf("got %q", m.Body)
	}
	dKey := prefix + "{dq}:unacked:delivering:" + before.id
	ttl, err := cc.PTTL(ctx, dKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if max := (2*time.Second + minLeaseTTL); ttl <= 0 || ttl > max {
		t.Errorf("the delivering hash's time to live is %v, want within (0, %v]", ttl, max)
	}
	if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		n, _ := cc.HLen(ctx, prefix+"{dq}:unacked").Result()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records left after the ack", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after := state(); after.clientID != before.clientID {
		t.Errorf("the node socket was redialled (client id %d, then %d)", before.clientID, after.clientID)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := cc.Exists(ctx, dKey).Result(); n != 0 {
		t.Errorf("the delivering hash %s is left after close", dKey)
	}
}
