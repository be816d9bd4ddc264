package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// privateRedis is a redis-server this test started and may kill: on a
// free port, in its own directory, stopped at cleanup by PID.
type privateRedis struct {
	t    testing.TB
	bin  string
	args []string
	port int
	dir  string
	cmd  *exec.Cmd
	url  string
	// client reaches the server (for the start-up PING and the tests).
	client func() *goredis.Client
}

// freePort returns a TCP port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func redisServerBin(t testing.TB) string {
	t.Helper()
	redisURL(t) // only with brokers enabled
	bin := os.Getenv("KOMBU_TEST_REDIS_SERVER")
	if bin == "" {
		bin = "/usr/bin/redis-server"
	}
	if _, err := os.Stat(bin); err != nil {
		transporttest.Require(t, "no redis-server binary to start a private server: %v", err)
	}
	return bin
}

// startPrivateRedis starts a redis-server of its own. aof turns on the
// append-only file with fsync on every write, so that a SIGKILL loses no
// acknowledged write and a restart reloads the data. extra are more
// command-line options.
func startPrivateRedis(t testing.TB, aof bool, extra ...string) *privateRedis {
	t.Helper()
	r := newPrivateRedis(t, aof, extra...)
	r.start()
	t.Cleanup(r.kill)
	return r
}

func newPrivateRedis(t testing.TB, aof bool, extra ...string) *privateRedis {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	r := &privateRedis{t: t, bin: redisServerBin(t), port: port, dir: dir,
		url: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	r.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
		"--daemonize", "no", "--logfile", dir + "/redis.log"}
	if aof {
		r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		r.args = append(r.args, "--appendonly", "no")
	}
	r.args = append(r.args, extra...)
	r.client = func() *goredis.Client {
		return goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1,
			Protocol: 2, DisableIdentity: true})
	}
	return r
}

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, r.args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	rdb := r.client()
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(context.Background()).Err()
		if err == nil || strings.Contains(fmt.Sprint(err), "NOAUTH") {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(r.dir + "/redis.log")
			r.t.Fatalf("private redis-server did not answer: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL to the server (by PID) and reaps it.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// A consumer survives a Redis crash and restart (an empty server): it
// reconnects by itself and consumes what is published afterwards.
func TestReconnectAfterRestart(t *testing.T) {
	srv := startPrivateRedis(t, false)
	cfg := configFromURL(t, srv.url, map[string]any{"global_keyprefix": uniq("rc") + ":"})
	cfg.Logger = testLogger(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t)
	conn, err := tr.Dial(ctxT(t), h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, _ := conn.Channel(ctxT(t))
	ch := c.(*Channel)
	ctx := ctxT(t)
	got := make(chan string, 1000)
	ch.Qos(ctx, 10)
	_, err = ch.Consume(ctx, transport.ConsumeOptions{Queue: "rq"}, func(m *transport.Message) {
		got <- string(m.Body)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			for {
				err := ch.Publish(ctx, textMsg(fmt.Sprint(i)), "", "rq", transport.PublishOptions{})
				if err == nil {
					break
				}
				if !transport.IsConnectionError(err) {
					t.Fatalf("publish: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	expect := func(from, to int) {
		seen := map[string]bool{}
		for len(seen) < to-from {
			seen[waitFor(t, got, "delivery")] = true
		}
		for i := from; i < to; i++ {
			if !seen[fmt.Sprint(i)] {
				t.Fatalf("message %d missing", i)
			}
		}
	}
	publish(0, 100)
	expect(0, 100)
	for round := 0; round < 2; round++ {
		srv.kill()
		time.Sleep(200 * time.Millisecond) // let the consumer notice the loss
		srv.start()
		publish(100*(round+1), 100*(round+2))
		expect(100*(round+1), 100*(round+2))
	}
}

// At least once across a crash: with an append-only file, every message
// published before or during consumption is delivered, however the kill
// falls; unacked records written before the crash come back through the
// visibility timeout.
func TestNoLossAcrossCrash(t *testing.T) {
	srv := startPrivateRedis(t, true)
	cfg := configFromURL(t, srv.url, map[string]any{
		"global_keyprefix":         uniq("crash") + ":",
		"visibility_timeout":       2,
		"unacked_restore_interval": "0.5",
		"unacked_restore_throttle": 1,
	})
	cfg.Logger = testLogger(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t)
	conn, err := tr.Dial(ctxT(t), h)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, _ := conn.Channel(ctxT(t))
	ch := c.(*Channel)
	ctx := ctxT(t)
	const n = 3000
	reqs := make([]PublishRequest, 0, n)
	for i := 0; i < n; i++ {
		reqs = append(reqs, PublishRequest{Message: textMsg(fmt.Sprint(i)), RoutingKey: "cq"})
	}
	if err := ch.PublishBatch(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	progress := make(chan int, n*2)
	ch.Qos(ctx, 50)
	_, err = ch.Consume(ctx, transport.ConsumeOptions{Queue: "cq"}, func(m *transport.Message) {
		mu.Lock()
		seen[string(m.Body)]++
		k := len(seen)
		mu.Unlock()
		ch.Ack(m.DeliveryInfo.DeliveryTag)
		progress <- k
	})
	if err != nil {
		t.Fatal(err)
	}
	// Kill -9 three times while the consumer is busy.
	for _, at := range []int{n / 4, n / 2, 3 * n / 4} {
		for waitFor(t, progress, "progress") < at {
		}
		srv.kill()
		srv.start()
	}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case k := <-progress:
			if k == n {
				mu.Lock()
				dups := 0
				for _, c := range seen {
					dups += c - 1
				}
				mu.Unlock()
				t.Logf("all %d delivered; %d deliveries were repeats (at least once)", n, dups)
				// Every acknowledgement lands eventually: no record is left.
				rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.port)})
				defer rdb.Close()
				for i := 0; ; i++ {
					left, err := rdb.HLen(ctx, cfg.Options["global_keyprefix"].(string)+"unacked").Result()
					if err == nil && left == 0 {
						return
					}
					if i > 400 {
						t.Fatalf("%d unacked records left (%v)", left, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		case <-deadline:
			mu.Lock()
			missing := 0
			for i := 0; i < n; i++ {
				if seen[fmt.Sprint(i)] == 0 {
					missing++
				}
			}
			mu.Unlock()
			t.Fatalf("%d of %d messages never delivered after the crash", missing, n)
		}
	}
}
