package filesystem

import (
	"testing"

	"github.com/kombu-go/kombu/transport/transporttest"
)

// Issue 12: the virtual channel's hub-only hooks (Deliver, Room, NoAck,
// ...) are not reachable through *Channel.
func TestChannelHidesHooks(t *testing.T) {
	transporttest.CheckChannelAPI(t, &Channel{}, "HandleReturns")
}
