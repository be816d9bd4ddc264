package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/testbroker/rediscluster"
	"github.com/kombu-go/kombu/transport"
)

// queuesOnMasters returns perMaster queue names on each master of the
// cluster, in turn (master 0, 1, 2, 0, 1, 2...), under prefix.
func queuesOnMasters(t testing.TB, cc *goredis.ClusterClient, prefix, base string, perMaster int) []string {
	t.Helper()
	ctx := ctxT(t)
	byMaster := map[string][]string{}
	var masters []string
	for i := 0; i < 1000; i++ {
		q := base + strconv.Itoa(i)
		n, err := cc.MasterForKey(ctx, prefix+"{"+q+"}")
		if err != nil {
			t.Fatal(err)
		}
		addr := n.Options().Addr
		if _, ok := byMaster[addr]; !ok {
			masters = append(masters, addr)
		}
		if len(byMaster[addr]) < perMaster {
			byMaster[addr] = append(byMaster[addr], q)
		}
	}
	if len(masters) < 3 {
		t.Fatalf("found queues on %d masters, want 3", len(masters))
	}
	var queues []string
	for j := range perMaster {
		for _, m := range masters {
			queues = append(queues, byMaster[m][j])
		}
	}
	return queues
}

// batchSetup declares, on ch, six queues two on each master (the first
// with x-expires), a direct exchange binding queue i with key "k<i>", a
// topic exchange binding the first three queues (one per master) with
// "t.#", and a fanout exchange; it returns the queues and the fanout
// exchange's PUB/SUB channel.
func batchSetup(t *testing.T, ch transport.Channel, cc *goredis.ClusterClient, prefix string) ([]string, string) {
	t.Helper()
	ctx := ctxT(t)
	queues := queuesOnMasters(t, cc, prefix, "bq", 2)
	for i, q := range queues {
		qd := transport.Queue{Name: q}
		if i == 0 {
			qd.Arguments = map[string]any{"x-expires": 600000}
		}
		if _, err := ch.DeclareQueue(ctx, qd); err != nil {
			t.Fatal(err)
		}
	}
	for _, ex := range []transport.Exchange{{Name: "dx", Type: transport.Direct}, {Name: "tx", Type: transport.Topic},
		{Name: "fx", Type: transport.Fanout}} {
		if err := ch.DeclareExchange(ctx, ex); err != nil {
			t.Fatal(err)
		}
	}
	for i, q := range queues {
		if err := ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: "dx", RoutingKey: "k" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if err := ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: "tx", RoutingKey: "t.#"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	o := ch.(*Channel).st.o
	return queues, o.key(o.fanoutTopic("fx", ""))
}

// batchOf returns n requests, message i with body "i" and priority i%10:
// every fifth to the topic exchange (three copies), the next to the fanout
// exchange, the next to the direct exchange (key k<i%6>), the others to
// queue i%6 through the default exchange. want is what each queue should
// hold, in publish order; fanout the bodies sent to the fanout exchange.
func batchOf(queues []string, n int) (reqs []PublishRequest, want map[string][]int, fanout []int) {
	want = map[string][]int{}
	for i := range n {
		m := textMsg(strconv.Itoa(i))
		m.Properties.Priority = i % 10
		r := PublishRequest{Message: m}
		switch i % 5 {
		case 0:
			r.Exchange, r.RoutingKey = "tx", "t.x"
			for _, q := range queues[:3] {
				want[q] = append(want[q], i)
			}
		case 1:
			r.Exchange = "fx"
			fanout = append(fanout, i)
		case 2:
			r.Exchange, r.RoutingKey = "dx", "k"+strconv.Itoa(i%6)
			want[queues[i%6]] = append(want[queues[i%6]], i)
		default:
			r.RoutingKey = queues[i%6]
			want[queues[i%6]] = append(want[queues[i%6]], i)
		}
		reqs = append(reqs, r)
	}
	return reqs, want, fanout
}

// checkQueues reads every priority list of each queue and checks that it
// holds the bodies want says, each list in publish order, and that every
// stored copy has a delivery tag of its own.
func checkQueues(t *testing.T, cc *goredis.ClusterClient, o *options, want map[string][]int) {
	t.Helper()
	ctx := ctxT(t)
	tags := map[string]bool{}
	for q, bodies := range want {
		var got []int
		for _, k := range o.stepKeys(q) {
			envs, err := cc.LRange(ctx, k, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			last := -1
			for j := len(envs) - 1; j >= 0; j-- { // LPUSH: the oldest last
				m, err := decodeEnvelope([]byte(envs[j]))
				if err != nil {
					t.Fatal(err)
				}
				n, _ := strconv.Atoi(string(m.Body))
				if n <= last {
					t.Errorf("queue %s, list %q: %d after %d", q, k, n, last)
				}
				if tag := m.DeliveryInfo.DeliveryTag; tags[tag] || tag == "" {
					t.Errorf("queue %s: message %d has delivery tag %q, not its own", q, n, tag)
				} else {
					tags[tag] = true
				}
				if s := o.step(m.Properties.Priority); o.key(o.queueKey(q, s)) != k {
					t.Errorf("queue %s: message %d of priority %d in %q", q, n, m.Properties.Priority, k)
				}
				last = n
				got = append(got, n)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, bodies) {
			t.Errorf("queue %s holds %d messages %v, want %d %v", q, len(got), got, len(bodies), bodies)
		}
	}
}

// TestClusterPublishBatch publishes one batch over six queues on the three
// masters with priorities, direct, topic and fanout routing and x-expires,
// and checks what every list holds, in order; with publish_wait_replicas=1
// too, and with a slot map that names one master for every slot (so that
// two thirds of the commands are answered MOVED and sent again).
func TestClusterPublishBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wait  int
		stale bool
	}{{"nowait", 0, false}, {"wait1", 1, false}, {"moved", 0, true}, {"moved-wait1", 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := uniq("cpb") + ":"
			ch, cc := clusterChannel(t, prefix, map[string]any{"publish_wait_replicas": tc.wait})
			ctx := ctxT(t)
			queues, topic := batchSetup(t, ch, cc, prefix)
			sub := cc.Subscribe(ctx, topic)
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
				t.Fatal(err)
			}
			reqs, want, fanout := batchOf(queues, 600)
			c := ch.(*Channel).st.c
			if tc.stale {
				staleSlotMap(t, c.topo)
			}
			if err := ch.(*Channel).PublishBatch(ctx, reqs); err != nil {
				t.Fatal(err)
			}
			checkQueues(t, cc, ch.(*Channel).st.o, want)
			for _, k := range ch.(*Channel).st.o.stepKeys(queues[0]) {
				if ttl, err := cc.PTTL(ctx, k).Result(); err != nil || ttl <= 0 && ttl != -2*time.Nanosecond {
					t.Errorf("x-expires: PTTL %s = %v, %v", k, ttl, err)
				}
			}
			for _, n := range fanout {
				m, err := sub.ReceiveMessage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				env, err := decodeEnvelope([]byte(m.Payload))
				if err != nil {
					t.Fatal(err)
				}
				if string(env.Body) != strconv.Itoa(n) {
					t.Fatalf("fanout: got %q, want %d", env.Body, n)
				}
			}
		})
	}
}

// staleSlotMap makes t's slot map name the master of slot 0 for every
// slot, as if the other masters' slots had moved there.
func staleSlotMap(tb testing.TB, t *clusterTopology) {
	tb.Helper()
	addr, err := t.masterOf(ctxT(tb), 0, false)
	if err != nil {
		tb.Fatal(err)
	}
	t.mu.Lock()
	t.slots, t.loaded = []slotRange{{from: 0, to: 16383, master: addr}}, time.Now()
	t.mu.Unlock()
}

// TestClusterPublishBatchErrorReply checks that an error reply fails the
// message it answers (named in the error) and no other: the list key of
// one queue holds a string.
func TestClusterPublishBatchErrorReply(t *testing.T) {
	prefix := uniq("cpbe") + ":"
	ch, cc := clusterChannel(t, prefix, nil)
	ctx := ctxT(t)
	queues := queuesOnMasters(t, cc, prefix, "eq", 1)
	o := ch.(*Channel).st.o
	if err := cc.Set(ctx, o.key(o.queueKey(queues[1], 0)), "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var reqs []PublishRequest
	want := map[string][]int{}
	for i := range 30 {
		q := queues[i%3]
		reqs = append(reqs, PublishRequest{Message: textMsg(strconv.Itoa(i)), RoutingKey: q})
		if q != queues[1] {
			want[q] = append(want[q], i)
		}
	}
	err := ch.(*Channel).PublishBatch(ctx, reqs)
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") ||
		!strings.Contains(err.Error(), fmt.Sprintf("10 of 30 messages not stored or not confirmed (message 1 to queue %q and 9 more)", queues[1])) {
		t.Fatalf("PublishBatch: %v", err)
	}
	if transport.IsConnectionError(err) {
		t.Errorf("an error reply is a connection error: %v", err)
	}
	checkQueues(t, cc, o, want)
}

// TestClusterPublishBatchClosed checks that a batch on a closed connection
// fails with transport.ErrClosed.
func TestClusterPublishBatchClosed(t *testing.T) {
	ch, _ := clusterChannel(t, uniq("cpbc")+":", nil)
	ch.(*Channel).st.c.Close()
	err := ch.(*Channel).PublishBatch(ctxT(t), []PublishRequest{{Message: textMsg("x"), RoutingKey: "q"}})
	if err == nil {
		t.Fatal("PublishBatch on a closed connection: no error")
	}
	if !errors.Is(err, transport.ErrClosed) {
		t.Errorf("PublishBatch on a closed connection: %v", err)
	}
}

// TestClusterPublishBatchWaitShort asks for more replicas than the
// cluster's masters have (one each): every node's WAIT comes back short,
// and the batch fails, naming every message (each may be stored).
func TestClusterPublishBatchWaitShort(t *testing.T) {
	prefix := uniq("cpbw") + ":"
	ch, cc := clusterChannel(t, prefix, map[string]any{"publish_wait_replicas": 2, "publish_wait_timeout": 0.1})
	queues := queuesOnMasters(t, cc, prefix, "wq", 1)
	var reqs []PublishRequest
	for i := range 9 {
		reqs = append(reqs, PublishRequest{Message: textMsg(strconv.Itoa(i)), RoutingKey: queues[i%3]})
	}
	err := ch.(*Channel).PublishBatch(ctxT(t), reqs)
	if err == nil || !strings.Contains(err.Error(), "9 of 9 messages not stored or not confirmed") ||
		!strings.Contains(err.Error(), "1 of 2 replicas acknowledged") {
		t.Fatalf("PublishBatch: %v", err)
	}
}

// TestPublishBatchWaitSingleNode runs the per-node path on one node
// (publish_wait_replicas without a cluster): the test Redis has no
// replica, so the batch's one WAIT comes back short and the batch fails,
// while the master stored every message, in order.
func TestPublishBatchWaitSingleNode(t *testing.T) {
	e := newEnv(t, map[string]any{"publish_wait_replicas": 1, "publish_wait_timeout": 0.05})
	ch := e.channel()
	ctx := ctxT(t)
	var reqs []PublishRequest
	for i := range 50 {
		reqs = append(reqs, PublishRequest{Message: textMsg(strconv.Itoa(i)), RoutingKey: "wq" + strconv.Itoa(i%2)})
	}
	err := ch.PublishBatch(ctx, reqs)
	if err == nil || !strings.Contains(err.Error(), "50 of 50 messages not stored or not confirmed") ||
		!strings.Contains(err.Error(), "0 of 1 replicas acknowledged") {
		t.Fatalf("PublishBatch: %v", err)
	}
	for q := range 2 {
		envs, err := e.rdb.LRange(ctx, e.prefix+"wq"+strconv.Itoa(q), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != 25 {
			t.Fatalf("queue wq%d holds %d messages, want 25", q, len(envs))
		}
		for j, env := range envs {
			m, err := decodeEnvelope([]byte(env))
			if err != nil {
				t.Fatal(err)
			}
			if want := strconv.Itoa(q + 2*(24-j)); string(m.Body) != want {
				t.Fatalf("queue wq%d[%d] = %q, want %q", q, j, m.Body, want)
			}
		}
	}
}

// TestClusterPublishBatchFaults publishes 3,000 messages in PublishBatch
// batches of 50 on a private cluster while something happens to a
// queue's master; a batch that fails is published again (at least once):
//
//   - the slot of queue mq migrates to another master (ASK, then MOVED),
//     while the batches take mq and a queue on another master in turn:
//     both lists then hold every message once, in order;
//   - with publish_wait_replicas=1, the master of a consumed queue is
//     killed (SIGKILL) and a replica takes over: the consumer receives
//     every message (clusterFaultTrial).
func TestClusterPublishBatchFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a failover takes several seconds")
	}
	rc := rediscluster.Start(t)
	t.Run("migration", func(t *testing.T) { batchAcrossMigration(t, rc, 3000) })
	t.Run("kill", func(t *testing.T) {
		res := clusterFaultTrial(t, rc, 2, 1, 3000, 50, killMaster)
		if res.lost > 0 {
			t.Errorf("lost %d of %d messages", res.lost, res.published)
		}
		t.Logf("duplicated %d, batches published again %d", res.dups, res.retries)
	})
}

// batchAcrossMigration publishes total messages in batches of 50, message
// i to queue mq (even i) or to a queue on another master (odd i), moves
// mq's slot to another master after a third of them, and checks what the
// two lists hold.
func batchAcrossMigration(t *testing.T, rc *rediscluster.Cluster, total int) {
	prefix := uniq("cpbm") + ":"
	cfg := clusterURLConfig(t, rc.URL(), map[string]any{"global_keyprefix": prefix})
	cc := clusterClient(t, cfg)
	ch := clusterChannelOn(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	master, err := rc.MasterOf(prefix + "{mq}")
	if err != nil {
		t.Fatal(err)
	}
	var other string
	for i := 0; other == ""; i++ {
		q := "oq" + strconv.Itoa(i)
		if m, err := rc.MasterOf(prefix + "{" + q + "}"); err == nil && m.Addr != master.Addr {
			other = q
		}
	}
	queues := [2]string{"mq", other}
	var sent, retries atomic.Int64
	done := make(chan error, 1)
	go func() { // joined below (done)
		for i := 0; i < total; i += 50 {
			reqs := make([]PublishRequest, min(50, total-i))
			for j := range reqs {
				reqs[j] = PublishRequest{Message: textMsg(strconv.Itoa(i + j)), RoutingKey: queues[(i+j)%2]}
			}
			for {
				err := ch.PublishBatch(ctx, reqs)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					done <- err
					return
				}
				t.Logf("batch at %d: %v (publishing it again)", i, err)
				retries.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
			sent.Add(int64(len(reqs)))
			time.Sleep(time.Duration(len(reqs)) * time.Millisecond)
		}
		done <- nil
	}()
	for sent.Load() < int64(total/3) {
		time.Sleep(10 * time.Millisecond)
	}
	migrateSlot(ctx, t, rc, master, prefix+"{mq}", func() {})
	if err := <-done; err != nil {
		t.Fatalf("publishing stopped: %v", err)
	}
	t.Logf("queue mq's slot moved from %s during the batches; batches published again: %d", master.Addr, retries.Load())
	want := map[string][]int{}
	for i := range total {
		want[queues[i%2]] = append(want[queues[i%2]], i)
	}
	checkQueues(t, cc, ch.st.o, want) // no connection fails here: no copy twice either
}

// clusterChannelOn opens a channel on the cluster of cfg; its connection
// closes with t.
func clusterChannelOn(t testing.TB, cfg transport.Config) *Channel {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tr.Dial(ctxT(t), startHub(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return ch.(*Channel)
}

// BenchmarkClusterPublishBatchVsPipeline compares, in interleaved rounds
// of the same run, Channel.PublishBatch on a cluster (envelopes encoded in
// the call) with a go-redis ClusterClient pipeline of envelopes encoded
// beforehand, batches of 100 messages taking three queues, one on each
// master, in turn; it reports both rates and the ratio.
func BenchmarkClusterPublishBatchVsPipeline(b *testing.B) {
	prefix := uniq("cpbb") + ":"
	tc, cc := clusterChannel(b, prefix, nil)
	ch := tc.(*Channel)
	ctx := context.Background()
	queues := queuesOnMasters(b, cc, prefix, "bq", 1)
	reqs := make([]PublishRequest, 100)
	envs := make([][]byte, 100)
	for i := range reqs {
		q := queues[i%3]
		reqs[i] = PublishRequest{Message: benchMsg(i), RoutingKey: q}
		m := *benchMsg(i)
		m.DeliveryInfo = transport.DeliveryInfo{RoutingKey: q, DeliveryTag: fmt.Sprintf("tag-%d", i)}
		var err error
		if envs[i], err = encodeEnvelope(&m, "base64"); err != nil {
			b.Fatal(err)
		}
	}
	ours := func() error { return ch.PublishBatch(ctx, reqs) }
	plain := func() error {
		_, err := cc.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, env := range envs {
				p.LPush(ctx, prefix+"{"+queues[i%3]+"}", env)
			}
			return nil
		})
		return err
	}
	var took [2]time.Duration
	n := max(b.N/100, 1)
	b.ResetTimer()
	for round := 0; round < 10; round++ {
		for k := range 2 {
			k = (round + k) % 2
			f := [2]func() error{ours, plain}[k]
			t0 := time.Now()
			for range max(n/10, 1) {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			took[k] += time.Since(t0)
		}
		for _, q := range queues {
			cc.Del(ctx, prefix+"{"+q+"}")
		}
	}
	msgs := float64(max(n/10, 1) * 10 * 100)
	b.ReportMetric(msgs/took[0].Seconds(), "batch-msg/s")
	b.ReportMetric(msgs/took[1].Seconds(), "pipeline-msg/s")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "ratio")
}
