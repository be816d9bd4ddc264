package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Transport is the in-process transport. It is safe for concurrent use.
type Transport struct {
	b    *broker
	opts channel.Options
}

var _ transport.Transport = (*Transport)(nil)

// New returns a memory transport. Every transport of the process with the
// same broker name shares its exchanges, bindings and queues, as Kombu's
// memory transport shares them across connections; the name is
// cfg.Hostname ("memory://name"), where "" and "localhost" name the default
// broker. cfg.Options are Kombu transport options: deadletter_queue and
// restore_on_close (see channel.ParseOptions).
func New(cfg transport.Config) (transport.Transport, error) {
	opts, err := channel.ParseOptions(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	name := cfg.Hostname
	if name == "localhost" {
		name = ""
	}
	b := namedBroker(name)
	opts.State = b.state
	opts.VHost = cfg.VirtualHost
	opts.Logger = cfg.Logger
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Transport{b: b, opts: opts}, nil
}

// Info describes the memory transport.
func (t *Transport) Info() transport.Info {
	return transport.Info{
		Driver:        "memory",
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout, transport.Headers},
		// Priority is ignored, as in Kombu: queues are FIFO.
		Priorities: false,
		Fanout:     "broadcast",
		// Publish returns once the message is stored: nothing to confirm
		// asynchronously.
		Confirms: true,
	}
}

// Dial returns a connection attached to h. It fails only when ctx has
// ended: the in-process broker is always reachable.
func (t *Transport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, fmt.Errorf("memory: dial with a nil hub")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: dial: %w", err)
	}
	return &Conn{t: t, h: h, chans: channel.NewSet[*Channel]()}, nil
}

// Conn is a connection to the in-process broker.
type Conn struct {
	t     *Transport
	h     *hub.Hub
	chans *channel.Set[*Channel]
}

var _ transport.Conn = (*Conn)(nil)

// Channel opens a channel. Safe for concurrent use.
func (c *Conn) Channel(ctx context.Context) (transport.Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: channel: %w", err)
	}
	st := &store{b: c.t.b, log: c.t.opts.Logger}
	ch := &Channel{Channel: channel.New(c.h, st, c.t.opts), conn: c}
	st.ch = ch.Channel
	if err := c.chans.Add(ch, nil); err != nil {
		ch.Channel.Close()
		return nil, fmt.Errorf("memory: %w", err)
	}
	return ch, nil
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.chans.Done() }

// Err returns nil while the connection is open and transport.ErrClosed
// after Close.
func (c *Conn) Err() error { return c.chans.Err() }

// Close closes every channel (restoring their unacknowledged messages) and
// the connection. Idempotent. From a hub callback (hub.InCallback) it
// returns an error matching hub.ErrInCallback and closes nothing: closing
// a channel waits for the hub.
func (c *Conn) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("memory: close: %w", hub.ErrInCallback)
	}
	chans, first := c.chans.Close()
	if !first {
		return nil
	}
	var err error
	for _, ch := range chans {
		if e := ch.Channel.Close(); e != nil && err == nil {
			err = e
		}
	}
	c.chans.Finish()
	return err
}

// Channel is a memory channel: a channel.Channel that also returns
// unroutable mandatory messages (transport.Returner).
type Channel struct {
	*channel.Channel
	conn *Conn
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// OnReturn sets the function that receives mandatory messages no queue
// took (reply code 312, NO_ROUTE); it runs on the hub goroutine.
func (ch *Channel) OnReturn(fn func(*transport.Returned)) { ch.HandleReturns(fn) }

// Close closes the channel (see channel.Channel.Close) and forgets it on
// its connection. From a hub callback it returns an error matching
// hub.ErrInCallback, and the channel stays open and known to the
// connection.
func (ch *Channel) Close() error {
	err := ch.Channel.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	ch.conn.chans.Remove(ch)
	return err
}
