package filesystem

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A re-executed test binary plays the consumer process of the kill
	// test (kill_test.go) instead of running the tests.
	if os.Getenv(roleEnv) == "consumer" {
		os.Exit(runConsumerProcess())
	}
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}
