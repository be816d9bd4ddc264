package channel_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain turns the hub's owner check on for every hub of these tests
// (hub.Options.CheckOwner) and checks for leaked goroutines.
func TestMain(m *testing.M) {
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}
