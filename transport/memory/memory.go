package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// Transport is the in-process transport. It is safe for concurrent use.
type Transport struct {
	b    *broker
	opts channel.Options
}

var _ transport.Transport = (*Transport)(nil)

// Options configure a memory [Transport]. The zero value uses the default
// broker with Kombu's behaviour, except as noted.
type Options struct {
	// Broker names the in-process broker (memory://name): every transport
	// of the process with the same name shares its exchanges, bindings and
	// queues. Default: "" (also "localhost"), the default broker.
	Broker string
	// DeadLetterQueue receives messages no binding routes
	// (deadletter_queue). Default: none, they are dropped (or returned to a
	// mandatory publisher).
	DeadLetterQueue string
	// NoRestoreOnClose drops a closing channel's unacknowledged messages,
	// as Kombu's memory transport does (restore_on_close=False). Default:
	// false, Close gives them back to their queues.
	NoRestoreOnClose bool
	// Logger receives diagnostics (Config.Logger). Default: discard.
	Logger *slog.Logger

	vhost string // names the virtual host in error texts
}

// unsupported are Kombu options of the virtual transports that mean
// nothing here, with the reason.
var unsupported = map[string]string{
	"polling_interval": "the memory transport wakes its consumers, it does not poll",
	"body_encoding":    "the memory transport stores messages, not encoded bodies",
}

// ParseConfig reads cfg into Options: cfg.Hostname names the broker, and
// cfg.Options may hold deadletter_queue (a string) and restore_on_close (a
// bool, default true), and confirm_publish (true only: publishes are
// always confirmed); Kombu's connection retry keys (max_retries,
// interval_*, connect_retries_timeout) are checked and accepted for
// messaging.Connection, which reads them for its connects. Any other key is an error (a
// *transport.OptionError naming it and listing the valid ones), on purpose
// unlike Kombu, which ignores keys it does not know; polling_interval and
// body_encoding are refused with the reason.
func ParseConfig(cfg transport.Config) (Options, error) {
	o := Options{Broker: cfg.Hostname, Logger: cfg.Logger, vhost: cfg.VirtualHost}
	r := optmap.New("memory", cfg.Options)
	r.String("deadletter_queue", &o.DeadLetterQueue)
	restore := true
	r.Bool("restore_on_close", &restore)
	o.NoRestoreOnClose = !restore
	r.Always("confirm_publish", true, "Publish returns once the message is stored, so publishes are always confirmed: only true")
	r.ConnectionKeys()
	r.Refuse(unsupported)
	return o, r.Err()
}

// New returns a memory transport for cfg: [ParseConfig], then
// [NewWithOptions].
func New(cfg transport.Config) (*Transport, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithOptions(o)
}

// NewWithOptions returns a memory transport over the broker o.Broker.
// Every transport of the process with the same broker name shares its
// exchanges, bindings and queues, as Kombu's memory transport shares them
// across connections. It never fails today; the error is for options that
// may be checked later.
func NewWithOptions(o Options) (*Transport, error) {
	name := o.Broker
	if name == "localhost" {
		name = ""
	}
	b := namedBroker(name)
	opts := channel.Options{
		State:            b.state,
		DeadLetterQueue:  o.DeadLetterQueue,
		NoRestoreOnClose: o.NoRestoreOnClose,
		VHost:            o.vhost,
		Logger:           o.Logger,
	}
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
	vc := channel.New(c.h, st, c.t.opts)
	ch := &Channel{Handle: vc.Handle(), vc: vc, conn: c}
	st.ch = ch.vc
	if err := c.chans.Add(ch, nil); err != nil {
		ch.vc.Close()
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
		if e := ch.vc.Close(); e != nil && err == nil {
			err = e
		}
	}
	c.chans.Finish()
	return err
}

// Channel is a memory channel: Kombu's virtual channel over the
// in-process broker. It implements transport.Channel (the methods of the
// embedded channel.Handle, and Close) and transport.Returner
// ([Channel.OnReturn]). Its methods are safe for concurrent use, as
// transport.Channel documents; the virtual channel's hub-side hooks are
// not part of its API.
type Channel struct {
	channel.Handle
	vc   *channel.Channel
	conn *Conn
}

var (
	_ transport.Channel  = (*Channel)(nil)
	_ transport.Returner = (*Channel)(nil)
)

// OnReturn sets the function that receives mandatory messages no queue
// took (reply code 312, NO_ROUTE); it runs on the hub goroutine; nil
// removes it.
func (ch *Channel) OnReturn(fn func(*transport.Returned)) { ch.vc.HandleReturns(fn) }

// Close closes the channel: its consumers are cancelled and its
// unacknowledged messages go back to their queues (unless
// Options.NoRestoreOnClose), and its connection forgets it. From a hub
// callback it returns an error matching hub.ErrInCallback, and the
// channel stays open and known to the connection.
func (ch *Channel) Close() error {
	err := ch.vc.Close()
	if errors.Is(err, hub.ErrInCallback) {
		return err
	}
	ch.conn.chans.Remove(ch)
	return err
}
