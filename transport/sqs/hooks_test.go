package sqs

import (
	"testing"

	"github.com/kombu-go/kombu/transport/transporttest"
)

// Issue 12: the virtual channel's hub-only hooks (Deliver, Room, NoAck,
// ...) are not reachable through *Channel; the queue listing kombu queues
// uses is its one extension.
func TestChannelHidesHooks(t *testing.T) {
	transporttest.CheckChannelAPI(t, &Channel{}, "ListQueues", "HandleReturns")
}
