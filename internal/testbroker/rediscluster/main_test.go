package rediscluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (os/exec's copying
// goroutines included).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
