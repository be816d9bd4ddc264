package sqla

import (
	"context"
	"errors"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Channel is a channel of the SQL transport: Kombu's virtual channel over
// the message table. It implements transport.Channel and
// transport.Returner; the methods are those of the virtual channel
// (package channel), whose documentation says which goroutines may call
// them.
type Channel struct {
	channel.Handle
	ch *channel.Channel
	st *store
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// OnReturn sets the function that receives mandatory messages no queue
// took; it runs on the hub goroutine.
func (c *Channel) OnReturn(fn func(*transport.Returned)) { c.ch.HandleReturns(fn) }

// Close closes the channel: its unacknowledged messages go back to their
// queues. From a hub callback it returns an error matching
// hub.ErrInCallback and the channel stays open.
func (c *Channel) Close() error {
	err := c.ch.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	c.st.c.chans.Remove(c)
	return err
}

// Queues lists every queue of the queue table with its ready and invisible
// rows (what `kombu queues` shows). Any goroutine.
func (c *Channel) Queues(ctx context.Context) ([]QueueStat, error) { return c.st.c.Queues(ctx) }
