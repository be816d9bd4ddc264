package faulttest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the tests, or, when the binary was re-executed as a
// consumer process (RoleEnv=consumer), the consumer instead.
func TestMain(m *testing.M) {
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	if os.Getenv(RoleEnv) == "consumer" {
		os.Exit(consumerMain())
	}
	goleak.VerifyTestMain(m)
}

// consumerMain is the consumer process: it consumes until SIGTERM or
// SIGINT (or dies by SIGKILL, which is the point), logging to stderr.
func consumerMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := ConfigFromEnv()
	if err != nil {
		log.Error("consumer: bad configuration", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = RunConsumer(ctx, cfg, log, func() {
		// The test waits for this line before it starts the fault's clock.
		fmt.Fprintln(os.Stdout, ReadyLine)
	})
	if err != nil {
		log.Error("consumer: stopped with an error", "err", err)
		return 1
	}
	log.Info("consumer: stopped cleanly")
	return 0
}

// scale is the size of a run: the default (about two minutes for all the
// fault tests) or the heavy one (KOMBU_FAULT_HEAVY=1).
type scale struct {
	heavy    bool
	kills    int // kills per case of TestFaultKill
	resets   int // resets per case of TestFaultReset
	restarts int // restarts per case of TestFaultRedisRestart
	queues   int // queues of the "many" cases

	clusterKills  int   // kills per case of TestFaultKillCluster
	clusterQueues []int // queue counts of TestFaultKillCluster's cases
}

// runScale reads KOMBU_FAULT_HEAVY and KOMBU_FAULT_TRIALS (faults per case,
// overriding both modes' counts).
func runScale(t *testing.T) scale {
	t.Helper()
	s := scale{kills: 10, resets: 30, restarts: 3, queues: 50, clusterKills: 10, clusterQueues: []int{6}}
	if v := os.Getenv("KOMBU_FAULT_HEAVY"); v != "" && v != "0" {
		s = scale{heavy: true, kills: 50, resets: 200, restarts: 10, queues: 1000,
			clusterKills: 50, clusterQueues: []int{6, 50}}
	}
	if v := os.Getenv("KOMBU_FAULT_TRIALS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KOMBU_FAULT_TRIALS=%q: want a positive number", v)
		}
		s.kills, s.resets, s.restarts, s.clusterKills = n, n, n, n
	}
	return s
}
