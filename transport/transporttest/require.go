package transporttest

import (
	"fmt"
	"os"
	"testing"
)

// Require reports that a test cannot run because something outside the
// process is missing (a broker, a binary, Python's kombu): it skips the test
// with the reason, or fails it when KOMBU_REQUIRE_BROKERS=1 (as CI sets),
// so that a missing dependency never passes silently there.
func Require(tb testing.TB, format string, args ...any) {
	tb.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("KOMBU_REQUIRE_BROKERS") == "1" {
		tb.Fatalf("%s, and KOMBU_REQUIRE_BROKERS=1", reason)
	}
	tb.Skip(reason + " (scripts/test.sh provides it)")
}

// BrokerURL returns the URL in the environment variable env
// (KOMBU_TEST_REDIS_URL, KOMBU_TEST_AMQP_URL), or calls Require.
func BrokerURL(tb testing.TB, env string) string {
	tb.Helper()
	u := os.Getenv(env)
	if u == "" {
		Require(tb, "%s is not set: no broker to test against", env)
	}
	return u
}
