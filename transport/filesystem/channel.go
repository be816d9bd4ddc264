package filesystem

import (
	"errors"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Channel is a filesystem channel: Kombu's virtual channel over the
// folders. It implements transport.Channel and transport.Returner.
type Channel struct {
	channel.Handle
	ch   *channel.Channel
	conn *Conn
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// OnReturn sets the function that receives unroutable mandatory messages.
func (c *Channel) OnReturn(fn func(*transport.Returned)) { c.ch.HandleReturns(fn) }

// Close closes the channel (its unacknowledged messages go back to their
// queues) and forgets it on its connection. From a hub callback it returns
// an error matching hub.ErrInCallback and closes nothing.
func (c *Channel) Close() error {
	err := c.ch.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	c.conn.chans.Remove(c)
	return err
}
