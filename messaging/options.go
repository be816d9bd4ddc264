package messaging

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// Options configure a [Connection]. The zero value is ready to use; each
// field documents its default.
type Options struct {
	// Hub is the event loop the connection's transport attaches to.
	// Default: a hub the connection creates on first use, owns, and closes
	// in Close. See the package documentation, # Concurrency.
	Hub *hub.Hub
	// DefaultScheme is the transport of a bare host name such as
	// "example.com" (Kombu's transport argument). Default: "amqp".
	DefaultScheme string
	// UserID and Password are used when a URL has no credentials. Default:
	// the transport's (guest/guest for amqp).
	UserID   string
	Password string
	// ConnectTimeout bounds each connection attempt, and by default the
	// whole of a lazy connect (see ConnectRetry). A URL's connect_timeout
	// query parameter overrides it. Default: 5 s (Kombu's connect_timeout).
	ConnectTimeout time.Duration
	// Heartbeat is the heartbeat interval for transports that have them.
	// A URL's heartbeat parameter overrides it. Default: 0 (off).
	Heartbeat time.Duration
	// TLS, when set, turns TLS on with this configuration (cloned; the
	// URL's ssl_* parameters adjust the clone). Default: TLS only for amqps,
	// rediss and URLs with ssl or ssl_* parameters.
	TLS *tls.Config
	// TransportOptions are Kombu's transport_options, passed to the
	// transport. A URL's query parameters are added to them and win over
	// them. The retry keys max_retries, interval_start, interval_step,
	// interval_max and connect_retries_timeout (numbers, in seconds) shape
	// lazy connects, as in Kombu (the AMQP transport's recovery follows them
	// too). Transports refuse keys they do not know (a misspelt key is an
	// error naming it, unlike Kombu). The connection never modifies the
	// map.
	TransportOptions map[string]any
	// Transport, when set, is the connection's transport, built in code
	// with typed options (redis.NewWithOptions, memory.NewWithOptions),
	// instead of one made from the URL's scheme and TransportOptions. Pass
	// the URL of the same broker: it still names the broker in Info, AsURI
	// and logs. With Transport, transport options (in TransportOptions or
	// the URL's query, other than the connection's retry keys), TLS
	// settings (Options.TLS, ssl parameters), a heartbeat and alternates
	// are errors: the transport's options were set when it was built.
	// Default: nil, a transport from the URL.
	Transport transport.Transport
	// Alternates are more URLs to fail over to, after those in the URL
	// string (Kombu's alternates, or a list given as hostname).
	Alternates []string
	// FailoverStrategy names the order in which alternates are tried:
	// "round-robin" (the default) or "shuffle". Failover, when set, wins.
	FailoverStrategy string
	// Failover is a custom strategy. Default: from FailoverStrategy.
	Failover FailoverStrategy
	// ConnectRetry is the retry policy of lazy connects: the first use of
	// DefaultChannel, Channel, DrainEvents, a Producer or a Consumer.
	// Default: Kombu's default_channel policy: intervals 2 s, 2 s, 30 s,
	// unlimited retries, for at most ConnectTimeout (so a dead broker fails
	// after the attempt that follows the 2 s and 4 s sleeps), overridden by
	// the retry keys of TransportOptions.
	ConnectRetry RetryPolicy
	// Schemes adds transports for URL schemes, or replaces built-in ones
	// (keyed by transport name: "amqp" also serves pyamqp URLs, "redis"
	// redis+socket URLs; a row for a built-in name keeps the built-in
	// defaults for the fields it leaves zero). Default: the built-in table
	// (memory, redis, rediss, redis+socket, sentinel, amqp, amqps, pyamqp).
	Schemes map[string]Scheme
	// Serializers is the serializer registry of Producers and Consumers.
	// Default: serializer.Default().
	Serializers *serializer.Registry
	// Compression is the compression registry. Default: compression.Default().
	Compression *compression.Registry
	// Logger receives diagnostics (reconnections, messages that cannot be
	// decoded), and is handed to the transport and to the hub the
	// connection creates. Default: slog.Default(), so that a message a
	// consumer refuses is never dropped without a trace; pass
	// slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
	// InlineDecodeLimit is the largest body, in bytes, that a consumer
	// decodes on the hub goroutine. Larger bodies, and every compressed
	// body, are decompressed and deserialized off the hub by the
	// connection's decode pool; their callbacks then run on the hub, and
	// the messages of each queue still reach the callbacks in order.
	// Default (0): [DefaultInlineDecodeLimit], 16 KiB. A negative value
	// sends every body to the pool.
	InlineDecodeLimit int
	// DecodeWorkers bounds the goroutines of the decode pool (started on
	// demand, gone when idle; Close joins them). Default:
	// runtime.GOMAXPROCS(0)-1, at least 1, so that the hub keeps a P.
	DecodeWorkers int
	// MaxDecompressedSize bounds the decompressed size of a received body,
	// in bytes: a larger one is a decode error matching
	// compression.ErrTooLarge, found while it is decompressed. Default:
	// the Compression registry's limit (compression.DefaultMaxDecompressedSize,
	// 64 MiB).
	MaxDecompressedSize int64
}

// NewConnection returns a Connection to the broker at url, which may hold
// several URLs separated by ';' (the first is used, the others are
// alternates). It parses and checks the URLs and their schemes but does not
// dial: the first call that needs the broker does. An empty url means
// "localhost" of the default scheme (amqp), as in Kombu. Errors match
// [ErrInvalidURL] or [ErrUnknownTransport].
func NewConnection(url string, opts Options) (*Connection, error) {
	var raws []string
	if url == "" && len(opts.Alternates) == 0 {
		url = "localhost"
	}
	var eps []Endpoint
	if url != "" {
		e, err := ParseURLs(url)
		if err != nil {
			return nil, err
		}
		eps = e
	}
	for _, a := range opts.Alternates {
		e, err := ParseURLs(a)
		if err != nil {
			return nil, err
		}
		eps = append(eps, e...)
	}
	for _, ep := range eps {
		raws = append(raws, ep.raw)
	}
	return newConnection(eps, raws, opts)
}

func newConnection(eps []Endpoint, raws []string, opts Options) (*Connection, error) {
	if opts.DefaultScheme == "" {
		opts.DefaultScheme = DefaultTransport
	}
	for _, ep := range eps {
		name := ep.Transport
		if name == "" {
			name = opts.DefaultScheme
			if a, ok := transportAliases[name]; ok {
				name = a
			}
		}
		if _, err := lookupScheme(name, opts.Schemes); err != nil {
			return nil, err
		}
	}
	if err := checkTransport(eps, opts); err != nil {
		return nil, err
	}
	if opts.Failover == nil {
		if _, err := failoverByName(opts.FailoverStrategy); err != nil {
			return nil, err
		}
	}
	return buildConnection(eps, raws, opts), nil
}

// buildConnection makes a Connection from validated endpoints and options.
func buildConnection(eps []Endpoint, raws []string, opts Options) *Connection {
	if opts.DefaultScheme == "" {
		opts.DefaultScheme = DefaultTransport
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	c := &Connection{
		opts:     opts,
		eps:      eps,
		clk:      realClock,
		log:      opts.Logger,
		ser:      opts.Serializers,
		comp:     opts.Compression,
		stratNm:  opts.FailoverStrategy,
		declared: map[string]struct{}{},
		trFor:    -1,
		h:        opts.Hub,
	}
	if len(eps) > 1 {
		c.alts = raws
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.opts.Logger = c.log
	c.inlineLimit = opts.InlineDecodeLimit
	if c.inlineLimit == 0 {
		c.inlineLimit = DefaultInlineDecodeLimit
	}
	c.maxDecompressed = opts.MaxDecompressedSize
	c.pool = newDecodePool(opts.DecodeWorkers)
	if c.ser == nil {
		c.ser = serializer.Default()
	}
	if c.comp == nil {
		c.comp = compression.Default()
	}
	c.strat = opts.Failover
	switch {
	case c.strat != nil && c.stratNm == "":
		c.stratNm = "custom"
	case c.strat == nil:
		c.strat, _ = failoverByName(opts.FailoverStrategy)
		if c.strat == nil {
			c.strat = RoundRobin
		}
		if c.stratNm == "" {
			c.stratNm = "round-robin"
		}
	}
	if len(eps) > 1 {
		c.cycle = c.strat(len(eps))
		c.cycle() // skip the first entry, as Kombu's next(cycle)
	}
	return c
}

// checkTransport refuses what Options.Transport makes meaningless:
// transport options and alternates.
func checkTransport(eps []Endpoint, opts Options) error {
	if opts.Transport == nil {
		return nil
	}
	if len(eps) > 1 {
		return errors.New("messaging: Options.Transport serves one broker: no alternates")
	}
	if opts.TLS != nil || opts.Heartbeat > 0 {
		return errors.New("messaging: Options.TLS and Options.Heartbeat with Options.Transport: set them on the transport's own options")
	}
	check := func(k string) error {
		if slices.Contains(connectionKeys, k) {
			return nil
		}
		return fmt.Errorf("messaging: transport option %q with Options.Transport: set it on the transport's own options", k)
	}
	for k := range opts.TransportOptions {
		if err := check(k); err != nil {
			return err
		}
	}
	for _, ep := range eps {
		if ep.TLS || len(ep.SSL) > 0 || ep.Heartbeat > 0 {
			return fmt.Errorf("messaging: TLS or heartbeat parameters in %s with Options.Transport: set them on the transport's own options", redactURL(ep.raw))
		}
		for k := range ep.Options {
			if err := check(k); err != nil {
				return err
			}
		}
	}
	return nil
}
