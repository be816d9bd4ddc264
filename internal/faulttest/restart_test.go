package faulttest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport/transporttest"
)

// TestFaultRedisRestart kills a private redis-server with SIGKILL and
// restarts it on the same port several times (every 0.5–2 s) while
// messages are published and one consumer process consumes. The server
// writes an append-only file with an fsync after every write, so a kill
// loses no write Redis acknowledged. The same consumer then drains: it
// must reconnect after every restart, lose nothing, redeliver at most the
// unacknowledged window per restart, and leave no message key in Redis.
//
// The publisher holds off from just before each kill until the server
// answers again: what this test judges is consumption. (A publish in
// flight when Redis dies may have been applied, and go-redis sends it
// again on the new connection: a duplicate made by the producer, which the
// bound on the consumer's redeliveries must not count.) Publishes that fail
// anyway count as uncertain, not lost.
func TestFaultRedisRestart(t *testing.T) {
	redisURL(t) // with the brokers enabled only
	ctl := os.Getenv("KOMBU_TEST_REDIS_CTL")
	if ctl == "" {
		transporttest.Require(t, "KOMBU_TEST_REDIS_CTL is not set: no way to start a private redis-server to kill")
	}
	sc := runScale(t)
	for _, c := range []struct{ prefetch, queues int }{{1, 1}, {100, sc.queues}} {
		t.Run(fmt.Sprintf("prefetch%d", c.prefetch), func(t *testing.T) {
			t.Run(fmt.Sprintf("queues%d", c.queues), func(t *testing.T) {
				restartCase(t, ctl, sc.restarts, c.prefetch, c.queues)
			})
		})
	}
}

// redisCtl runs scripts/brokers.sh (KOMBU_TEST_REDIS_CTL) with args and
// returns its standard output.
func redisCtl(t *testing.T, ctl string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ctl, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", ctl, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

func restartCase(t *testing.T, ctl string, restarts, prefetch, nqueues int) {
	dir := filepath.Join(t.TempDir(), "redis")
	url := redisCtl(t, ctl, "redis-start", dir, "aof")
	t.Cleanup(func() { redisCtl(t, ctl, "redis-stop", dir, "KILL") })

	e := newEnv(t, url, nqueues, prefetch)
	pub := e.startTrickle(trickleRate)
	c := e.startConsumer(url)
	e.waitReady(c)
	for i := 1; i <= restarts; i++ {
		time.Sleep(500*time.Millisecond + rand.N(1501*time.Millisecond))
		pub.pause()
		e.fault("restart %d of redis-server (SIGKILL)", i)
		redisCtl(t, ctl, "redis-restart", dir, "aof")
		pub.resume()
	}
	if n, err := pub.stop(); n > 0 {
		t.Logf("%d publishes failed while Redis was down (their messages count as uncertain); the first: %v", n, err)
	}
	e.finish(t.Name(), url, restarts, c)
}
