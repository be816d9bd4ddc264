package messaging

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// configError marks errors that no retry can fix (a bad transport
// configuration).
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// dial makes one connection attempt to the current endpoint.
func (c *Connection) dial(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.aliveLocked() {
		c.mu.Unlock()
		return nil
	}
	ch, old := c.detachLocked()
	h, err := c.hubLocked()
	if err != nil {
		c.mu.Unlock()
		return &configError{err}
	}
	tr, cfg, err := c.transportLocked()
	c.mu.Unlock()
	_ = closeConn(ch, old)
	if err != nil {
		return &configError{err}
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	tc, err := tr.Dial(dctx, h)
	cancel()
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil && !transport.IsConnectionError(err) {
			err = &transport.BrokerError{Kind: transport.KindConnection, Reason: "connect timed out", Err: err}
		}
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = tc.Close()
		return ErrClosed
	}
	c.tconn = tc
	c.gen++
	clear(c.declared)
	c.mu.Unlock()
	c.watchBlocked(tc)
	return nil
}

// transportLocked returns the transport of the current endpoint, creating
// it when the endpoint changed.
func (c *Connection) transportLocked() (transport.Transport, transport.Config, error) {
	ep := c.eps[c.cur]
	sc, err := lookupScheme(c.transportName(ep), c.opts.Schemes)
	if err != nil {
		return nil, transport.Config{}, err
	}
	cfg, err := c.config(ep, sc)
	if err != nil {
		return nil, cfg, err
	}
	if c.tr == nil || c.trFor != c.cur {
		tr := c.opts.Transport
		if tr == nil {
			if tr, err = sc.New(cfg); err != nil {
				return nil, cfg, fmt.Errorf("messaging: %s transport: %w", c.transportName(ep), err)
			}
		}
		c.tr, c.trFor = tr, c.cur
	}
	return c.tr, cfg, nil
}

// config builds the transport configuration of an endpoint.
func (c *Connection) config(ep Endpoint, sc Scheme) (transport.Config, error) {
	cfg := transport.Config{
		Scheme:         ep.Scheme,
		Hostname:       ep.Hostname,
		Port:           ep.Port,
		UserID:         ep.UserID,
		Password:       ep.Password,
		VirtualHost:    ep.VirtualHost,
		ConnectTimeout: c.opts.ConnectTimeout,
		Heartbeat:      c.opts.Heartbeat,
		Logger:         c.opts.Logger,
	}
	if cfg.Scheme == "" {
		cfg.Scheme = c.opts.DefaultScheme
	}
	if cfg.UserID == "" && cfg.Password == "" {
		cfg.UserID, cfg.Password = c.opts.UserID, c.opts.Password
	}
	if cfg.VirtualHost == "" {
		cfg.VirtualHost = "/"
	}
	if ep.ConnectTimeout > 0 {
		cfg.ConnectTimeout = ep.ConnectTimeout
	}
	if ep.Heartbeat > 0 {
		cfg.Heartbeat = ep.Heartbeat
	}
	opts := maps.Clone(c.opts.TransportOptions)
	if opts == nil {
		opts = map[string]any{}
	}
	for k, v := range ep.Options {
		opts[k] = v
	}
	if len(ep.SSL) > 0 {
		opts["ssl"] = maps.Clone(ep.SSL)
	}
	if ep.LoginMethod != "" {
		opts["login_method"] = ep.LoginMethod
	}
	cfg.Options = opts
	for i, e := range c.eps {
		if i != c.cur {
			cfg.Alternates = append(cfg.Alternates, e.raw)
		}
	}
	t, err := buildTLS(ep, sc, c.opts.TLS)
	if err != nil {
		return cfg, err
	}
	cfg.TLS = t
	return cfg, nil
}

// connectionKeys are Kombu's connection retry keys (connectPolicy reads
// them, as Kombu's _extract_failover_opts does). They are passed on to the
// transport too: the AMQP transport's recovery follows them, the virtual
// transports check and accept them.
var connectionKeys = []string{"max_retries", "interval_start", "interval_step", "interval_max", "connect_retries_timeout"}

// completesCycle is Kombu's completes_cycle: true when retries+1 attempts
// went once around the alternates (always true without alternates).
func (c *Connection) completesCycle(retries int) bool {
	if len(c.eps) < 2 {
		return true
	}
	return (retries+1)%len(c.eps) == 0
}

// switchNext moves to the next alternate URL, if any (Kombu's
// maybe_switch_next). The current connection is dropped; nothing dials.
func (c *Connection) switchNext() {
	c.mu.Lock()
	if c.cycle == nil || c.closed {
		c.mu.Unlock()
		return
	}
	next := c.cycle()
	ch, tc := c.detachLocked()
	prev := c.cur
	c.cur = next
	c.mu.Unlock()
	_ = closeConn(ch, tc)
	if prev != next {
		c.log.Info("messaging: failing over", "from", redactURL(c.eps[prev].raw), "to", redactURL(c.eps[next].raw))
	}
}

// ensureConnection is Kombu's _ensure_connection: retry_over_time around
// dial, with failover to the next alternate after each failure and no
// sleep until a whole cycle of alternates failed.
func (c *Connection) ensureConnection(ctx context.Context, p RetryPolicy, wrap bool) error {
	c.connectMu.Lock()
	defer c.connectMu.Unlock()
	c.mu.Lock()
	closed, alive := c.closed, c.aliveLocked()
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if alive {
		return nil
	}
	p = p.withDefaults(2*time.Second, 2*time.Second, 30*time.Second)
	catch := func(err error) bool {
		var ce *configError
		return !errors.As(err, &ce) && !errors.Is(err, ErrClosed) && ctx.Err() == nil
	}
	attempts, err := retryOverTime(ctx, c.clk, p, catch, c.dial, func(err error, it *intervals, retries int) time.Duration {
		var d time.Duration
		if c.completesCycle(retries) {
			d = it.next()
		}
		if p.Errback != nil {
			p.Errback(err, d)
		}
		c.log.Warn("messaging: cannot connect to broker", "url", c.AsURI(false), "err", err, "retry_in", d)
		c.switchNext()
		return d
	})
	if err == nil {
		return nil
	}
	var ce *configError
	if errors.As(err, &ce) {
		return ce.err
	}
	if wrap && !errors.Is(err, ErrClosed) {
		return &OperationalError{Op: "connect", Attempts: attempts, Err: err}
	}
	return err
}

// Connect establishes the connection now if it is not (Kombu's connect:
// two attempts, 2 s apart, with failover). The error is the transport's,
// not wrapped in an OperationalError.
func (c *Connection) Connect(ctx context.Context) error {
	return c.ensureConnection(ctx, RetryPolicy{MaxRetries: 1}, false)
}

// EnsureConnection establishes the connection, retrying with policy p
// (default: intervals 2 s, 2 s, 30 s, unlimited retries until ctx ends),
// failing over to the next alternate after each failure (Kombu's
// ensure_connection). A failure after the retries is an
// [*OperationalError]; a closed connection gives [ErrClosed].
func (c *Connection) EnsureConnection(ctx context.Context, p RetryPolicy) error {
	return c.ensureConnection(ctx, p, true)
}

// connectPolicy is the policy of lazy connects (Kombu's
// _extract_failover_opts).
func (c *Connection) connectPolicy() RetryPolicy {
	c.mu.Lock()
	ep := c.eps[c.cur]
	c.mu.Unlock()
	p := RetryPolicy{Timeout: c.opts.ConnectTimeout}
	if ep.ConnectTimeout > 0 {
		p.Timeout = ep.ConnectTimeout
	}
	opt := func(k string) (float64, bool) {
		v, ok := c.opts.TransportOptions[k]
		if s, found := ep.Options[k]; found {
			v, ok = s, true
		}
		if !ok {
			return 0, false
		}
		switch x := v.(type) {
		case int:
			return float64(x), true
		case int64:
			return float64(x), true
		case float64:
			return x, true
		case time.Duration:
			return x.Seconds(), true
		case string:
			f, err := strconv.ParseFloat(x, 64)
			return f, err == nil
		}
		return 0, false
	}
	secs := func(f float64) time.Duration {
		if f <= 0 {
			return -1
		}
		return time.Duration(f * float64(time.Second))
	}
	if f, ok := opt("max_retries"); ok {
		p.MaxRetries = int(f)
		if p.MaxRetries == 0 {
			p.MaxRetries = NoRetries
		}
	}
	if f, ok := opt("interval_start"); ok {
		p.IntervalStart = secs(f)
	}
	if f, ok := opt("interval_step"); ok {
		p.IntervalStep = secs(f)
	}
	if f, ok := opt("interval_max"); ok {
		p.IntervalMax = secs(f)
	}
	if f, ok := opt("connect_retries_timeout"); ok {
		p.Timeout = secs(f)
	}
	u := c.opts.ConnectRetry
	if u.MaxRetries != 0 {
		p.MaxRetries = u.MaxRetries
	}
	for _, f := range []struct{ dst, src *time.Duration }{
		{&p.IntervalStart, &u.IntervalStart}, {&p.IntervalStep, &u.IntervalStep},
		{&p.IntervalMax, &u.IntervalMax}, {&p.Timeout, &u.Timeout},
	} {
		if *f.src != 0 {
			*f.dst = *f.src
		}
	}
	if p.Timeout < 0 {
		p.Timeout = 0
	}
	p.Errback, p.Callback = u.Errback, u.Callback
	return p
}
