package memory_test

import (
	"testing"

	"github.com/kombu-go/kombu/transport/memory"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// Issue 12: the virtual channel's hub-only hooks (Deliver, Room, NoAck,
// ...) are not reachable through *memory.Channel.
func TestChannelHidesHooks(t *testing.T) {
	transporttest.CheckChannelAPI(t, &memory.Channel{}, "HandleReturns")
}
