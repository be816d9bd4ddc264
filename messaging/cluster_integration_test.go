package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// rabbitCluster is a 3-node RabbitMQ cluster of the test's own, started
// with scripts/brokers.sh rabbit-cluster-start (KOMBU_TEST_RABBIT_CTL).
type rabbitCluster struct {
	ctl  string
	dir  string
	urls []string // node k is urls[k-1], in DIR/nk
}

// startRabbitCluster starts the cluster, or skips: the cluster tests run
// only with KOMBU_TEST_RABBIT_CLUSTER=1, because three nodes take 1-2.5
// minutes to start on a busy 2-core machine. KOMBU_TEST_RABBIT_CLUSTER_DIR
// names a directory whose cluster is reused (started if down) and left
// running, to iterate on the test.
func startRabbitCluster(t *testing.T) *rabbitCluster {
	t.Helper()
	if os.Getenv("KOMBU_TEST_RABBIT_CLUSTER") != "1" {
		t.Skip("KOMBU_TEST_RABBIT_CLUSTER=1 runs the tests that start a 3-node RabbitMQ cluster (1-3 minutes)")
	}
	ctl := os.Getenv("KOMBU_TEST_RABBIT_CTL")
	if ctl == "" {
		transporttest.Require(t, "KOMBU_TEST_RABBIT_CTL is not set: no RabbitMQ cluster can be started")
	}
	dir := os.Getenv("KOMBU_TEST_RABBIT_CLUSTER_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "kombu-rc-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if out, err := exec.Command(ctl, "rabbit-cluster-stop", dir).CombinedOutput(); err != nil {
				t.Errorf("rabbit-cluster-stop %s: %v\n%s", dir, err, out)
				return // leave the logs for a look
			}
			os.RemoveAll(dir)
		})
	}
	start := time.Now()
	out, err := exec.Command(ctl, "rabbit-cluster-start", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("rabbit-cluster-start: %v\n%s\n(logs in %s)", err, ee.Stderr, dir)
		}
		t.Fatal(err)
	}
	t.Logf("3-node cluster ready in %v", time.Since(start).Round(time.Second))
	return &rabbitCluster{ctl: ctl, dir: dir, urls: strings.Split(strings.TrimSpace(string(out)), ";")}
}

// run runs brokers.sh with args and returns its output.
func (rc *rabbitCluster) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(rc.ctl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("brokers.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// leader returns the number k of the node (DIR/nk) that leads queue,
// asking node ask.
func (rc *rabbitCluster) leader(t *testing.T, ask int, queue string) int {
	t.Helper()
	out := rc.run(t, "rabbit-ctl", rc.nodeDir(ask), "list_queues", "name", "leader", "--quiet", "--no-table-headers")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != queue {
			continue
		}
		for k := 1; k <= len(rc.urls); k++ {
			node, err := os.ReadFile(filepath.Join(rc.nodeDir(k), "rabbit.node"))
			if err == nil && strings.TrimSpace(string(node)) == f[1] {
				return k
			}
		}
		t.Fatalf("leader %s of %s is no node of the cluster", f[1], queue)
	}
	t.Fatalf("queue %s not listed by node %d:\n%s", queue, ask, out)
	return 0
}

func (rc *rabbitCluster) nodeDir(k int) string { return filepath.Join(rc.dir, "n"+strconv.Itoa(k)) }

// failoverURL lists the nodes' URLs starting with node first (Kombu's
// alternates, separated by ';').
func (rc *rabbitCluster) failoverURL(first int) string {
	var urls []string
	for i := range rc.urls {
		urls = append(urls, rc.urls[(first-1+i)%len(rc.urls)])
	}
	return strings.Join(urls, ";")
}

// TestIntegrationRabbitClusterFailover stops the node that leads a quorum
// queue while a producer publishes to it (with publisher confirms, the
// quorum default) and a ConsumerWorker consumes from it, both connected to
// that node through a failover URL list. Both must fail over to another
// node by themselves, and every message whose publish was confirmed must
// be delivered: lost must be 0. Duplicates (redeliveries of messages
// delivered but not yet acknowledged, and republished unconfirmed
// messages) are allowed, at least once, and reported.
func TestIntegrationRabbitClusterFailover(t *testing.T) {
	rc := startRabbitCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	name := "kombu-go-failover-" + messaging.NewUUID()[:8]
	q := messaging.QuorumQueue(name, messaging.Exchange{}, "")

	// The transport's own recovery would redial the same (stopped) node;
	// recovery=false hands the loss to the messaging layer, which fails
	// over through the alternates as Kombu does.
	opts := brokerOptions()
	opts.TransportOptions = map[string]any{"recovery": false}
	opts.FailoverStrategy = "round-robin"
	setup, err := messaging.NewConnection(rc.failoverURL(1), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	ch, err := setup.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	leader := rc.leader(t, 1, name)
	t.Logf("queue %s: leader on node %d (%s)", name, leader, rc.urls[leader-1])
	survivor := leader%len(rc.urls) + 1
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer ccancel()
		c, err := messaging.NewConnection(rc.urls[survivor-1], brokerOptions())
		if err != nil {
			return
		}
		defer c.Close()
		if ch, err := c.DefaultChannel(cctx); err == nil {
			_, _ = ch.DeleteQueue(cctx, name, false, false)
		}
	}()
	_ = setup.Close()

	// Consumer and producer both start on the leader's node.
	var mu sync.Mutex
	delivered := map[int]int{}
	var stoppedAt, lastDelivery time.Time
	var maxGap time.Duration // the longest pause between deliveries after the stop began
	consConn, err := messaging.NewConnection(rc.failoverURL(leader), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer consConn.Close()
	worker, err := messaging.NewConsumerWorker(consConn, messaging.ConsumerWorkerOptions{
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{q}, PrefetchCount: 50,
				Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
					var i int
					if _, err := fmt.Sscanf(fmt.Sprint(body), "m%d", &i); err != nil {
						t.Errorf("body %v", body)
					}
					mu.Lock()
					delivered[i]++
					now := time.Now()
					if !stoppedAt.IsZero() {
						from := lastDelivery
						if from.Before(stoppedAt) {
							from = stoppedAt
						}
						maxGap = max(maxGap, now.Sub(from))
					}
					lastDelivery = now
					mu.Unlock()
					_ = m.Ack()
				}}}}, nil
		},
		ConnectRetry:      messaging.RetryPolicy{IntervalStart: 200 * time.Millisecond, IntervalStep: 200 * time.Millisecond, IntervalMax: time.Second},
		OnConnectionError: func(err error, d time.Duration) { t.Logf("consumer: connection error %v; retry in %v", err, d) },
		OnConnectionRevived: func(c *messaging.Connection) {
			t.Logf("consumer: connected to %s", c.AsURI(false))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wstop := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- worker.Run(wctx) }()
	defer func() {
		wstop()
		if err := <-workerDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	}()

	prodConn, err := messaging.NewConnection(rc.failoverURL(leader), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer prodConn.Close()
	p, err := messaging.NewProducer(prodConn, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const total = 600
	const stopAt = 200
	confirmed := map[int]bool{}
	var failed, retried int
	stopDone := make(chan time.Duration, 1)
	for i := range total {
		if i == stopAt {
			mu.Lock()
			stoppedAt = time.Now()
			mu.Unlock()
			go func() {
				start := time.Now()
				out, err := exec.Command(rc.ctl, "rabbit-stop", rc.nodeDir(leader)).CombinedOutput()
				if err != nil {
					t.Errorf("rabbit-stop node %d: %v\n%s", leader, err, out)
				}
				stopDone <- time.Since(start)
			}()
		}
		err := p.Publish(ctx, fmt.Sprintf("m%d", i), messaging.PublishOptions{
			RoutingKey: name, Declare: []messaging.Declaration{q}, Retry: true,
			RetryPolicy: messaging.RetryPolicy{MaxRetries: 30, IntervalStart: 200 * time.Millisecond,
				IntervalStep: 200 * time.Millisecond, IntervalMax: time.Second,
				Errback: func(error, time.Duration) { retried++ }},
		})
		if err != nil {
			failed++
			t.Logf("publish m%d: %v", i, err)
			continue
		}
		confirmed[i] = true
		time.Sleep(5 * time.Millisecond)
	}
	stopTook := <-stopDone
	publishEnd := time.Now()

	// Wait until every confirmed message arrived (or the deadline).
	missing := func() []int {
		mu.Lock()
		defer mu.Unlock()
		var out []int
		for i := range confirmed {
			if delivered[i] == 0 {
				out = append(out, i)
			}
		}
		return out
	}
	for len(missing()) > 0 && ctx.Err() == nil && time.Since(publishEnd) < 60*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	lost := missing()
	mu.Lock()
	dups, unconfirmedDelivered, deliveries := 0, 0, 0
	for i, n := range delivered {
		deliveries += n
		if n > 1 {
			dups += n - 1
		}
		if !confirmed[i] {
			unconfirmedDelivered++
		}
	}
	gap := maxGap
	mu.Unlock()
	now := rc.leader(t, survivor, name)
	t.Logf("published %d, confirmed %d, failed %d, publish retries %d; delivered %d distinct (%d deliveries), duplicated %d, delivered unconfirmed %d, lost %d",
		total, len(confirmed), failed, retried, len(delivered), deliveries, dups, unconfirmedDelivered, len(lost))
	t.Logf("leader node %d stopped in %v (rabbitmqctl stop); longest pause between deliveries after the stop began: %v; new leader: node %d",
		leader, stopTook.Round(time.Millisecond), gap.Round(time.Millisecond), now)
	if len(lost) > 0 {
		t.Errorf("%d confirmed messages lost: %v", len(lost), lost)
	}
	if now == leader {
		t.Errorf("the stopped node %d still leads the queue", leader)
	}
	if len(confirmed) < total/2 {
		t.Errorf("only %d of %d publishes confirmed: the producer did not fail over", len(confirmed), total)
	}
}
