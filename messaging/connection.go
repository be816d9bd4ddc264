package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// Connection is Kombu's Connection: the URL of a broker (with alternates to
// fail over to), a lazily established transport connection, its default
// channel, and the hub its deliveries run on. Create one with
// [NewConnection]; nothing dials until the connection is used.
//
// A Connection is safe for concurrent use. Its methods must not be called
// from a hub callback, except Info, AsURI and String (the others may wait
// for the hub).
type Connection struct {
	opts    Options
	eps     []Endpoint
	alts    []string // the raw URLs, for Info
	strat   FailoverStrategy
	clk     clock
	log     *slog.Logger
	ser     *serializer.Registry
	comp    *compression.Registry
	stratNm string

	// connectMu serialises (re)connections, so that one goroutine dials
	// while the others wait for its result; mu is held only briefly.
	connectMu sync.Mutex
	mu        sync.Mutex
	cur       int        // index of the current endpoint in eps
	cycle     func() int // failover iterator, nil with a single URL
	tr        transport.Transport
	trFor     int // the endpoint tr was made for
	tconn     transport.Conn
	defCh     transport.Channel
	h         *hub.Hub
	ownHub    bool
	closed    bool
	declared  map[string]struct{}
	gen       uint64 // counts successful connections
	// replicated holds the quorum queues and streams this connection
	// declared, by name, for ConfirmAuto; kept across reconnections.
	// Copied on write (under mu), read without a lock by every publish.
	replicated atomic.Pointer[map[string]Queue]

	// deliveries counts messages handed to consumers of this connection;
	// DrainEvents waits for it to move. Written on the hub goroutine.
	deliveries atomic.Uint64
	// closing is set by Close before it waits for anything, so that a
	// DrainEvents running the hub on another goroutine returns.
	closing atomic.Bool
	// errMu guards pending: consumers report errors on the hub goroutine
	// and DrainEvents takes them on the caller's.
	errMu   sync.Mutex
	pending []error
	dropped int

	// pool decodes large and compressed bodies off the hub; Close joins
	// it. inlineLimit and maxDecompressed are Options.InlineDecodeLimit
	// (defaulted) and Options.MaxDecompressedSize.
	pool            *decodePool
	inlineLimit     int
	maxDecompressed int64
	// decodeErrors counts the messages consumers of this connection could
	// not decode.
	decodeErrors atomic.Uint64
	// onBlocked and onUnblocked are the hooks of OnBlocked and
	// OnUnblocked; they are read when the broker's notification arrives.
	onBlocked   atomic.Pointer[func(reason string)]
	onUnblocked atomic.Pointer[func()]
}

// DecodeErrors returns how many delivered messages the consumers of this
// connection could not decode (malformed envelope, failed decompression,
// refused content type, bad body), whatever was done with them.
func (c *Connection) DecodeErrors() uint64 { return c.decodeErrors.Load() }

// hubNow returns the hub the connection's deliveries run on now.
func (c *Connection) hubNow() *hub.Hub {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.h
}

// transportName is the table key of an endpoint's transport.
func (c *Connection) transportName(ep Endpoint) string {
	if ep.Transport == "" {
		if a, ok := transportAliases[c.opts.DefaultScheme]; ok {
			return a
		}
		return c.opts.DefaultScheme
	}
	return ep.Transport
}

// Hub returns the hub the connection's deliveries run on, creating the
// connection's own hub if it has none yet. Run it with h.Run on a goroutine
// of your own to consume without DrainEvents.
func (c *Connection) Hub() (*hub.Hub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.hubLocked()
}

func (c *Connection) hubLocked() (*hub.Hub, error) {
	if c.h == nil {
		h, err := hub.New(hub.Options{Logger: c.opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("messaging: create hub: %w", err)
		}
		c.h, c.ownHub = h, true
	}
	return c.h, nil
}

// RegisterWithEventLoop makes the connection use h, the caller's hub,
// instead of its own (Kombu's register_with_event_loop). Call it before the
// connection is used; if it is already connected, it is disconnected (its
// own hub closed) and reconnects on h when next used. The caller keeps
// ownership of h: Close does not close it.
func (c *Connection) RegisterWithEventLoop(h *hub.Hub) error {
	if h == nil {
		return errors.New("messaging: RegisterWithEventLoop: nil hub")
	}
	c.connectMu.Lock()
	defer c.connectMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.h == h {
		c.mu.Unlock()
		return nil
	}
	ch, tc := c.detachLocked()
	old, own := c.h, c.ownHub
	c.h, c.ownHub = h, false
	c.mu.Unlock()
	err := closeConn(ch, tc)
	if own && old != nil {
		err = errors.Join(err, old.Close())
	}
	return err
}

// detachLocked forgets the transport connection and default channel and
// returns them for closing outside the lock. The declaration cache goes
// with them.
func (c *Connection) detachLocked() (transport.Channel, transport.Conn) {
	ch, tc := c.defCh, c.tconn
	c.defCh, c.tconn = nil, nil
	clear(c.declared)
	return ch, tc
}

// closeConn closes a default channel and a transport connection, ignoring
// the channel's errors as Kombu's maybe_close_channel does.
func closeConn(ch transport.Channel, tc transport.Conn) error {
	if ch != nil {
		_ = ch.Close()
	}
	if tc != nil {
		if err := tc.Close(); err != nil && !errors.Is(err, transport.ErrClosed) && !transport.IsConnectionError(err) {
			return err
		}
	}
	return nil
}

// Connected reports whether the connection is established and not known to
// be broken (Kombu's connected).
func (c *Connection) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aliveLocked()
}

func (c *Connection) aliveLocked() bool {
	return !c.closed && c.tconn != nil && c.tconn.Err() == nil
}

// current returns the live transport connection, connecting lazily with
// the connect policy.
func (c *Connection) current(ctx context.Context) (transport.Conn, *hub.Hub, error) {
	c.mu.Lock()
	if c.aliveLocked() {
		tc, h := c.tconn, c.h
		c.mu.Unlock()
		return tc, h, nil
	}
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if err := c.ensureConnection(ctx, c.connectPolicy(), true); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, ErrClosed
	}
	if c.tconn == nil {
		return nil, nil, errNotConnected
	}
	return c.tconn, c.h, nil
}

// currentOrLost is current for DrainEvents: a transport connection that
// was established and has broken is detached and reported (a connection
// error) instead of being replaced by a lazy reconnection, in the same
// critical section that finds it dead, so that a break between an earlier
// check and this call cannot be papered over. Once reported, the next call
// reconnects.
func (c *Connection) currentOrLost(ctx context.Context) (transport.Conn, *hub.Hub, error) {
	c.mu.Lock()
	if !c.closed && c.tconn != nil && !c.aliveLocked() {
		tc := c.tconn
		ch, old := c.detachLocked()
		c.mu.Unlock()
		_ = closeConn(ch, old)
		return nil, nil, lostError(tc.Err())
	}
	c.mu.Unlock()
	return c.current(ctx)
}

// errNotConnected is a connection error: the connection dropped between
// connecting and using it.
var errNotConnected = &transport.BrokerError{Kind: transport.KindConnection, Reason: "messaging: not connected"}

// DefaultChannel returns the connection's default channel, connecting and
// opening it on first use (Kombu's default_channel). The connection owns
// it: do not close it. After a reconnection it is a new channel.
func (c *Connection) DefaultChannel(ctx context.Context) (transport.Channel, error) {
	for {
		c.mu.Lock()
		if c.defCh != nil && c.aliveLocked() {
			ch := c.defCh
			c.mu.Unlock()
			return ch, nil
		}
		c.mu.Unlock()
		tc, _, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := tc.Channel(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		switch {
		case c.closed:
			c.mu.Unlock()
			_ = ch.Close()
			return nil, ErrClosed
		case c.tconn != tc:
			// Reconnected meanwhile: this channel belongs to the old one.
			c.mu.Unlock()
			_ = ch.Close()
			continue
		case c.defCh != nil:
			// Another goroutine won the race.
			def := c.defCh
			c.mu.Unlock()
			_ = ch.Close()
			return def, nil
		}
		c.defCh = ch
		c.mu.Unlock()
		return ch, nil
	}
}

// Channel opens a new channel, connecting first if needed (Kombu's
// channel()). The caller owns the channel and must Close it.
func (c *Connection) Channel(ctx context.Context) (transport.Channel, error) {
	tc, _, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	return tc.Channel(ctx)
}

// Close closes the default channel, the transport connection (restoring
// unacknowledged messages where the transport can) and, if the connection
// created it, its hub (Kombu's release/close). It first joins the decode
// pool (see Options.InlineDecodeLimit): a decode in progress completes,
// queued ones are dropped and their messages go back to the broker. Unlike Kombu's, a closed
// Connection stays closed: later calls return [ErrClosed]. Idempotent.
//
// Close waits for the hub, so a hub callback (a consumer callback
// included) must not call it: there it returns an error matching
// hub.ErrInCallback at once and closes nothing. Cancel the consumers from
// the callback, and close the connection from another goroutine, or from
// the one that drives the hub once it has stopped.
func (c *Connection) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("messaging: close: %w", hub.ErrInCallback)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.closing.Store(true)
	ch, tc := c.detachLocked()
	h, own := c.h, c.ownHub
	c.mu.Unlock()
	if h != nil {
		h.Wake() // end a DrainEvents' poll: its condition sees closing
	}
	// The decode pool first: its dead-letter publications still have a
	// channel; messages it had not prepared stay unacknowledged and go back
	// to the broker with the connection.
	c.pool.close()
	err := closeConn(ch, tc)
	if own && h != nil {
		err = errors.Join(err, h.Close())
	}
	return err
}

// Release is Close (Kombu's release).
func (c *Connection) Release() error { return c.Close() }

// collect drops the transport connection without closing the connection
// itself (Kombu's collect), so that the next use reconnects.
func (c *Connection) collect() {
	c.mu.Lock()
	ch, tc := c.detachLocked()
	c.mu.Unlock()
	_ = closeConn(ch, tc)
}

// dropDefaultChannel forgets the default channel after a channel error, so
// that the next use opens a new one.
func (c *Connection) dropDefaultChannel(ch transport.Channel) {
	c.mu.Lock()
	if c.defCh != ch {
		c.mu.Unlock()
		return
	}
	c.defCh = nil
	c.mu.Unlock()
	_ = ch.Close()
}

// isConnectionError reports errors that call for a reconnection: the
// transport's connection errors, and a closed-channel error while the
// transport connection is known to be broken.
func (c *Connection) isConnectionError(err error) bool {
	if transport.IsConnectionError(err) {
		return true
	}
	if errors.Is(err, transport.ErrClosed) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.closed && (c.tconn == nil || c.tconn.Err() != nil)
	}
	return false
}

// staleChannel reports whether ch is no longer the default channel (a
// reconnection replaced it).
func (c *Connection) staleChannel(ch transport.Channel) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.defCh != ch
}

// generation returns the number of successful connections so far.
func (c *Connection) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}
