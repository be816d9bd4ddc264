package memory_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}
