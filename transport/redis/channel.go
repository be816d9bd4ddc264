package redis

import (
	"errors"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Channel is a Redis channel: Kombu's virtual channel over the Redis
// store. It implements transport.Channel (the methods of the embedded
// channel.Handle, and Close) and transport.BatchPublisher
// ([Channel.PublishBatch]). Its methods are safe for concurrent use, as
// transport.Channel documents; the virtual channel's hub-side hooks are
// not part of its API.
type Channel struct {
	channel.Handle
	vc *channel.Channel
	st *store
}

var (
	_ transport.Channel        = (*Channel)(nil)
	_ transport.BatchPublisher = (*Channel)(nil)
)

// Close closes the channel: its consumers are cancelled and its
// unacknowledged messages go back to their queues (unless
// Options.NoRestoreOnClose), and the connection forgets it. From a hub
// callback it returns an error matching hub.ErrInCallback, and the
// channel stays open and known to the connection.
func (ch *Channel) Close() error {
	err := ch.vc.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	ch.st.c.chans.Remove(ch)
	return err
}
