package sqs

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

func TestMain(m *testing.M) {
	// The fault tests run their consumer as a child process: this binary
	// again, with KOMBU_SQS_FAULT_ROLE=consumer.
	if os.Getenv(faultRoleEnv) == "consumer" {
		os.Exit(runFaultConsumer())
	}
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}

// sqsURL returns KOMBU_TEST_SQS_URL ("sqs://KEY:SECRET@127.0.0.1:PORT",
// an SQS emulator; scripts/test.sh starts one) or skips (fails with
// KOMBU_REQUIRE_BROKERS=1).
func sqsURL(t testing.TB) string {
	t.Helper()
	return transporttest.BrokerURL(t, "KOMBU_TEST_SQS_URL")
}

// configFromURL is a minimal Kombu URL parser for the tests (the real one
// belongs to messaging).
func configFromURL(t testing.TB, raw string, opts map[string]any) transport.Config {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.Config{Scheme: u.Scheme, Hostname: u.Hostname(), Options: map[string]any{}}
	if p := u.Port(); p != "" {
		cfg.Port, _ = strconv.Atoi(p)
	}
	if u.User != nil {
		cfg.UserID = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	for k, v := range u.Query() {
		cfg.Options[k] = v[0]
	}
	for k, v := range opts {
		cfg.Options[k] = v
	}
	return cfg
}

// uniq returns a name unique to this run.
func uniq(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// testOpts are the transport options of the integration tests: short long
// polls, so that a consumer of several queues moves on quickly.
func testOpts(extra map[string]any) map[string]any {
	o := map[string]any{"wait_time_seconds": 1, "polling_interval": 0.05}
	for k, v := range extra {
		o[k] = v
	}
	return o
}
