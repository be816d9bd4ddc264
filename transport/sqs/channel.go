package sqs

import (
	"context"
	"errors"
	"strings"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Channel is an SQS channel: Kombu's virtual channel (package channel)
// over SQS. The methods are those of transport.Channel, with the same
// concurrency rules (see the package channel documentation), plus
// transport.Returner and [Channel.ListQueues].
type Channel struct {
	channel.Handle
	ch   *channel.Channel
	conn *Conn
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// OnReturn sets the function that receives mandatory messages no queue
// took; it runs on the hub goroutine.
func (c *Channel) OnReturn(fn func(*transport.Returned)) { c.ch.HandleReturns(fn) }

// ListQueues returns the names of the SQS queues whose names start with
// the transport's queue_name_prefix followed by prefix (without
// queue_name_prefix, and as SQS spells them: "a.b" was created as "a-b"),
// or the predefined queues. Safe for concurrent use; it calls SQS on the caller's goroutine.
func (c *Channel) ListQueues(ctx context.Context, prefix string) ([]string, error) {
	cl := c.conn.cl
	if pq := c.conn.t.o.PredefinedQueues; pq != nil {
		var names []string
		want := cl.canonical(prefix)
		for name := range pq {
			if strings.HasPrefix(name, want) {
				names = append(names, name)
			}
		}
		return names, nil
	}
	names, err := cl.list(ctx, cl.canonical(prefix))
	if p := EntityName(c.conn.t.o.QueueNamePrefix); p != "" {
		for i, n := range names {
			names[i] = strings.TrimPrefix(n, p)
		}
	}
	return names, err
}

// Close closes the channel: consumers cancelled, unacknowledged messages
// made visible again (ChangeMessageVisibility 0), and forgets it on its
// connection. From a hub callback it returns an error matching
// hub.ErrInCallback and the channel stays open.
func (c *Channel) Close() error {
	err := c.ch.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	c.conn.chans.Remove(c)
	return err
}
