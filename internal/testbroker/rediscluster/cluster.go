package rediscluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The environment the helper reads. scripts/test.sh sets all of them.
const (
	// EnvURL is the shared cluster's URL, redis+cluster://127.0.0.1:P1,...
	EnvURL = "KOMBU_TEST_REDIS_CLUSTER_URL"
	// EnvDir is the shared cluster's state directory (DIR/n1 ... DIR/n6).
	EnvDir = "KOMBU_TEST_REDIS_CLUSTER_DIR"
	// EnvCtl is the path of scripts/brokers.sh.
	EnvCtl = "KOMBU_TEST_REDIS_CTL"
	// EnvServer is the path of the redis-server binary.
	EnvServer = "KOMBU_TEST_REDIS_SERVER"
	// EnvRequire set to 1 makes a missing cluster fail the test instead of
	// skipping it.
	EnvRequire = "KOMBU_REQUIRE_BROKERS"
)

// Timeouts of the helper's own waits. The cluster's start is bounded by
// scripts/brokers.sh itself (30 s for the cluster to become ready).
const (
	ctlTimeout     = 90 * time.Second
	restartTimeout = 30 * time.Second
	pollInterval   = 50 * time.Millisecond
)

// Role is the part a node plays in the cluster.
type Role string

// The roles. A replica is what Redis calls a slave.
const (
	Master  Role = "master"
	Replica Role = "replica"
)

// SlotRange is an inclusive range of hash slots.
type SlotRange struct{ First, Last int }

// Node is one node of the cluster, as a live node of the cluster sees it.
type Node struct {
	// Addr is the node's client address, "127.0.0.1:PORT".
	Addr string
	// ID is the node's cluster ID (40 hex digits).
	ID string
	// Role is master or replica.
	Role Role
	// PID is the process ID the node reports (INFO server), or 0 when it
	// does not answer.
	PID int
	// Failed says the node that was asked flags this one as failing (fail
	// or fail?).
	Failed bool
	// MasterID is a replica's master's ID.
	MasterID string
	// Slots are a master's slots, in order.
	Slots []SlotRange
}

// Cluster is a running 6-node Redis Cluster: a private one from [Start],
// or the run's shared one from [Shared].
//
// Nodes, Kill and Restart fail the test on error, so they must be called
// from the test's goroutine; MasterOf and WaitFailover return errors and
// may be called from any goroutine.
type Cluster struct {
	tb      testing.TB
	ctl     string // scripts/brokers.sh ("" for a shared cluster without it)
	dir     string // DIR of brokers.sh redis-cluster-start ("" for a given URL)
	url     string
	private bool
}

// Start starts a private 6-node cluster (3 masters, 3 replicas) in a
// directory of tb.TempDir() with scripts/brokers.sh redis-cluster-start and
// stops it in tb.Cleanup. It returns once every node says cluster_state:ok,
// every slot is served and every replica is in sync. The test may Kill and
// Restart its nodes.
//
// It skips the test, saying why, when redis-server, redis-cli or
// scripts/brokers.sh cannot be found, and fails it instead under
// KOMBU_REQUIRE_BROKERS=1.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	ctl := brokersScript()
	if ctl == "" {
		require(tb, "scripts/brokers.sh not found (%s is unset and no go.mod with scripts/brokers.sh is above %s): no Redis Cluster can be started", EnvCtl, workDir())
	}
	if err := haveRedis(); err != nil {
		require(tb, "%v: no Redis Cluster can be started", err)
	}
	c := &Cluster{tb: tb, ctl: ctl, dir: tb.TempDir(), private: true}
	// Registered before the start, so that a half-started cluster is stopped
	// too, and after TempDir, so that it runs before the directory goes.
	tb.Cleanup(func() {
		if _, err := c.run("redis-cluster-stop", c.dir); err != nil {
			tb.Errorf("rediscluster: %v", err)
		}
	})
	begin := time.Now()
	out, err := c.run("redis-cluster-start", c.dir)
	if err != nil {
		tb.Fatalf("rediscluster: %v", err)
	}
	c.url = out
	tb.Logf("rediscluster: private cluster %s ready in %v", c.url, time.Since(begin).Round(time.Millisecond))
	return c
}

// Shared returns the run's shared cluster, which scripts/test.sh starts and
// names in KOMBU_TEST_REDIS_CLUSTER_URL and KOMBU_TEST_REDIS_CLUSTER_DIR.
// It skips the test when the URL is unset (fails it under
// KOMBU_REQUIRE_BROKERS=1). Other packages' tests use the same cluster at
// the same time: Kill and Restart are refused on it, and a test keeps to
// keys of its own.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		require(tb, "%s is not set: no shared Redis Cluster to test against", EnvURL)
	}
	return &Cluster{tb: tb, ctl: brokersScript(), dir: os.Getenv(EnvDir), url: url}
}

// URL returns redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3: the
// masters when the cluster was started, in slot order.
func (c *Cluster) URL() string { return c.url }

// Dir returns the cluster's state directory (DIR/n1 ... DIR/n6, with each
// node's redis.conf, nodes.conf and redis.log), or "" when unknown.
func (c *Cluster) Dir() string { return c.dir }

// Kill kills node n with SIGKILL and returns once its process is gone. Only
// the process scripts/brokers.sh started for that node of this cluster is
// signalled (brokers.sh checks its command line), and only on a private
// cluster.
func (c *Cluster) Kill(n Node) {
	c.tb.Helper()
	d := c.nodeDir(n)
	if _, err := c.run("redis-stop", d, "KILL"); err != nil {
		c.tb.Fatalf("rediscluster: kill %s: %v", n.Addr, err)
	}
}

// Restart starts node n again on its port, with its nodes.conf and no data,
// and waits until it has rejoined: every node answers, says cluster_state:ok
// and flags none of the others, their views agree, and every replica is in
// sync. A master that was replaced while it was down comes back as a
// replica. It returns n as the cluster now sees it.
func (c *Cluster) Restart(n Node) Node {
	c.tb.Helper()
	d := c.nodeDir(n)
	if _, err := c.run("redis-start", d); err != nil {
		c.tb.Fatalf("rediscluster: restart %s: %v", n.Addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	var why string
	for {
		s := c.survey(ctx)
		if why = s.unsettled(); why == "" {
			if !s.answered(n.Addr) {
				why = n.Addr + " does not answer"
			} else if got, ok := s.node(n.Addr); ok {
				return got
			}
		}
		if !sleep(ctx, pollInterval) {
			c.tb.Fatalf("rediscluster: %s did not rejoin within %v: %s", n.Addr, restartTimeout, why)
		}
	}
}

// nodeDir returns the directory of n's server (DIR/nK), failing the test if
// the cluster is not private or n is not one of its nodes.
func (c *Cluster) nodeDir(n Node) string {
	c.tb.Helper()
	if !c.private {
		c.tb.Fatalf("rediscluster: %s of the shared cluster: other packages' tests use it at the same time; a test that kills or restarts nodes uses Start", n.Addr)
	}
	_, port, _ := strings.Cut(n.Addr, ":")
	for i := 1; i <= 6; i++ {
		d := filepath.Join(c.dir, "n"+strconv.Itoa(i))
		if b, err := os.ReadFile(filepath.Join(d, "redis.port")); err == nil && strings.TrimSpace(string(b)) == port {
			return d
		}
	}
	c.tb.Fatalf("rediscluster: %s is not a node of the cluster in %s", n.Addr, c.dir)
	return ""
}

// run runs scripts/brokers.sh with args and returns its standard output,
// trimmed.
func (c *Cluster) run(args ...string) (string, error) {
	if c.ctl == "" {
		return "", errors.New("scripts/brokers.sh not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.ctl, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The servers it starts inherit no descriptor of ours; WaitDelay bounds
	// the wait for output should one hold stdout open all the same.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("brokers.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// require skips the test with reason, or fails it under
// KOMBU_REQUIRE_BROKERS=1 (as transport/transporttest.Require does).
func require(tb testing.TB, format string, args ...any) {
	tb.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("%s, and %s=1", reason, EnvRequire)
	}
	tb.Skip(reason + " (scripts/test.sh provides it)")
}

// brokersScript returns KOMBU_TEST_REDIS_CTL, else scripts/brokers.sh of
// the first directory above the working directory that has a go.mod, or "".
func brokersScript() string {
	if p := os.Getenv(EnvCtl); p != "" {
		return p
	}
	for dir := workDir(); dir != ""; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "scripts", "brokers.sh")
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

func workDir() string {
	d, _ := os.Getwd()
	return d
}

// haveRedis checks that redis-server (KOMBU_TEST_REDIS_SERVER or PATH) and
// redis-cli (beside it or in PATH) exist, as scripts/brokers.sh finds them.
func haveRedis() error {
	server := os.Getenv(EnvServer)
	if server == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return errors.New("redis-server is not installed (apt-get install redis-server)")
		}
		server = p
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(server), "redis-cli")); err == nil {
		return nil
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return errors.New("redis-cli is not installed (apt-get install redis-tools)")
	}
	return nil
}

// sleep waits d or until ctx is done, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
