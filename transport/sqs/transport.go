package sqs

import (
	"context"
	"errors"
	"fmt"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Transport is the SQS transport. It is safe for concurrent use. Every
// connection of one Transport shares its exchange and binding state; each
// has its own SDK clients and cache of queue URLs.
type Transport struct {
	o Options
}

var _ transport.Transport = (*Transport)(nil)

// New returns an SQS transport for a URL's configuration
// ("sqs://KEY:SECRET@host:port" plus Kombu's transport options; see
// [Options] for each key and its Kombu default). Unknown options are an
// error (*transport.OptionError).
func New(cfg transport.Config) (*Transport, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithOptions(o)
}

// NewWithOptions returns an SQS transport for typed options, best made
// from [DefaultOptions]. Fields are taken as given (0 is a valid wait and
// polling interval); an empty Region and empty credentials come from the
// environment, as documented on [Options].
func NewWithOptions(o Options) (*Transport, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	if o.Channel.State == nil {
		o.Channel.State = channel.NewState()
	}
	if o.Channel.Logger == nil {
		o.Channel.Logger = o.Logger
	}
	return &Transport{o: o}, nil
}

// Options returns the transport's options, defaults filled in.
func (t *Transport) Options() Options { return t.o }

// Info describes the SQS transport.
func (t *Transport) Info() transport.Info {
	return transport.Info{
		Driver:        "sqs",
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout, transport.Headers},
		Priorities:    false,
		Fanout:        "broadcast",
		// Publish returns once SendMessage has been answered.
		Confirms: true,
	}
}

// Dial attaches a connection to h. Like Kombu's channel creation it asks
// SQS for something (ListQueues with the queue name prefix, or nothing
// with predefined queues) and fails when the endpoint cannot be reached.
func (t *Transport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, errors.New("sqs: dial with a nil hub")
	}
	cl := newClient(&t.o)
	if err := cl.ping(ctx); err != nil {
		cl.close()
		return nil, err
	}
	c := &Conn{t: t, h: h, cl: cl, exec: newWorker(), recv: newWorker(), chans: channel.NewSet[*Channel]()}
	c.exec.start()
	c.recv.start()
	return c, nil
}

// Conn is one connection: two goroutines that make the blocking SDK calls
// of its channels' consumer side and post the results to the hub. The
// executor runs acknowledgements and requeues; the receiver runs the long
// polls (ReceiveMessage), one at a time, so that a poll waiting up to
// wait_time_seconds never delays an acknowledgement. Nothing runs per
// queue.
type Conn struct {
	t     *Transport
	h     *hub.Hub
	cl    *client // SDK clients and the queue URL cache
	exec  *worker
	recv  *worker
	chans *channel.Set[*Channel]
}

var _ transport.Conn = (*Conn)(nil)

// Channel opens a channel. Safe for concurrent use.
func (c *Conn) Channel(ctx context.Context) (transport.Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqs: channel: %w", err)
	}
	st := &store{c: c}
	vc := channel.New(c.h, st, c.t.o.Channel)
	ch := &Channel{Handle: vc.Handle(), ch: vc, conn: c}
	st.ch = ch.ch
	if err := c.chans.Add(ch, nil); err != nil {
		ch.ch.Close()
		return nil, fmt.Errorf("sqs: %w", err)
	}
	return ch, nil
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.chans.Done() }

// Err returns nil while the connection is open and transport.ErrClosed
// after Close.
func (c *Conn) Err() error { return c.chans.Err() }

// Close closes every channel (their unacknowledged messages are made
// visible again), waits for a long poll in flight (at most
// wait_time_seconds; what it received is made visible again), lets the
// executor finish its queued settlements and joins both goroutines. Idempotent. From a hub callback it returns an error matching
// hub.ErrInCallback and closes nothing.
func (c *Conn) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("sqs: close: %w", hub.ErrInCallback)
	}
	chans, first := c.chans.Close()
	if !first {
		return nil
	}
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.ch.Close())
	}
	// A long poll in flight ends by itself (within wait_time_seconds) and
	// queues the release of what it received on the executor, which then
	// finishes every queued settlement.
	c.recv.stop(true)
	c.exec.stop(true)
	c.cl.close()
	c.chans.Finish()
	return errors.Join(errs...)
}

// ping is the Dial check: one ListQueues (Kombu's _update_queue_cache at
// channel creation), whose URLs also fill the cache.
func (cl *client) ping(ctx context.Context) error {
	if cl.o.PredefinedQueues != nil {
		return nil
	}
	_, err := cl.list(ctx, cl.o.QueueNamePrefix)
	return err
}
