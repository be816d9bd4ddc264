package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Defaults, as Kombu's pyamqp transport has them (kombu-spec §5.13).
const (
	// DefaultPort is the AMQP port; DefaultTLSPort is used with TLS.
	DefaultPort    = 5672
	DefaultTLSPort = 5671
	// DefaultHeartbeat is used when Config.Heartbeat is zero.
	DefaultHeartbeat = 10 * time.Second
	// DefaultConnectTimeout is used when Config.ConnectTimeout is zero
	// (Kombu's connect_timeout).
	DefaultConnectTimeout = 5 * time.Second
	defaultFrameMax       = 131072
	defaultUser           = "guest"
	defaultHost           = "localhost"
)

// Errors of this package. Broker refusals are *transport.BrokerError values;
// these sentinels cover what the transport itself decides.
var (
	// ErrNacked is returned by Publish in confirm mode when the broker
	// answered basic.nack.
	ErrNacked = errors.New("amqp: message nacked by the broker")
	// ErrBadTableValue reports a header or argument value that has no AMQP
	// field-table type.
	ErrBadTableValue = errors.New("amqp: value has no AMQP table type")
	// ErrBadOption reports a transport option that cannot be parsed.
	ErrBadOption = errors.New("amqp: bad transport option")
	// ErrRecoveryFailed wraps the last error once connection recovery gave up.
	ErrRecoveryFailed = errors.New("amqp: connection recovery gave up")
)

// settings is a parsed Config: everything a dial and the recovery need.
type settings struct {
	host, user, password, vhost string
	port                        int
	useTLS                      bool
	tlsCfg                      *tlsSettings
	connectTimeout              time.Duration
	heartbeat                   time.Duration
	frameMax                    int
	connName                    string
	clientProps                 map[string]any
	confirm                     bool
	recovery                    bool
	maxRetries                  int // < 0: unlimited
	intervalStart               time.Duration
	intervalStep                time.Duration
	intervalMax                 time.Duration
	closeTimeout                time.Duration
	logger                      *slog.Logger
}

// Transport dials RabbitMQ (or any AMQP 0-9-1 broker) with amqp091-go. Create
// it with [New]; it is safe for concurrent use.
type Transport struct {
	s settings
}

// New parses cfg and returns the AMQP transport. It fails on a malformed
// option (wrapping [ErrBadOption]) or unreadable TLS files; it does not
// connect.
//
// Config fields read: Scheme (amqps turns TLS on), Hostname (default
// localhost), Port (default 5672, or 5671 with TLS), UserID and Password
// (each defaults to guest when empty, as pyamqp does), VirtualHost (as Kombu
// parsed it from the URL path; empty means "/"), TLS, ConnectTimeout (default
// 5 s), Heartbeat (default 10 s), Logger. Options read:
//
//   - confirm_publish (bool): put every channel in confirm mode; Publish then
//     waits for the broker's basic.ack and fails with [ErrNacked] on a nack.
//   - connection_name (string): the client-provided connection name shown by
//     the broker's management tools.
//   - client_properties (map): extra client properties for connection.start-ok.
//   - frame_max (int): the largest frame to negotiate (default 131072).
//   - recovery (bool, default true): reconnect after a connection loss; see
//     the package documentation.
//   - max_retries (int; default, "none", null or a negative number:
//     unlimited, Kombu's max_retries=None), interval_start, interval_step,
//     interval_max (seconds, defaults 2, 2, 30): Kombu's retry policy, used
//     by each recovery. The first attempt is immediate; then the waits are
//     interval_start, +interval_step, ... up to interval_max+interval_start,
//     as Kombu's retry_over_time, for max_retries retries.
//   - close_timeout (seconds, default 5): how long Close waits for the broker
//     before cutting the socket.
//   - ssl (bool or map), ssl_ca_certs, ssl_certfile, ssl_keyfile,
//     ssl_cert_reqs (CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED),
//     ssl_server_hostname, ssl_check_hostname: TLS as Kombu's ssl dict has it
//     (the keys may also sit, without the ssl_ prefix, in an "ssl" map).
func New(cfg transport.Config) (transport.Transport, error) {
	s, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Transport{s: s}, nil
}

// Info describes the transport.
func (t *Transport) Info() transport.Info {
	port := DefaultPort
	if t.s.useTLS {
		port = DefaultTLSPort
	}
	return transport.Info{
		Driver:        "amqp",
		DefaultPort:   port,
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout, transport.Headers},
		Priorities:    true,
		Fanout:        "broadcast",
		Heartbeats:    true,
		Confirms:      t.s.confirm,
	}
}

// Dial connects to the broker and attaches the connection to h. The context
// bounds the TCP connect, the TLS handshake and the AMQP handshake, together
// with Config.ConnectTimeout.
func (t *Transport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, errors.New("amqp: Dial needs a hub")
	}
	ac, nc, err := dialBroker(ctx, &t.s)
	if err != nil {
		return nil, err
	}
	return newConn(t, h, ac, nc), nil
}

func parseConfig(cfg transport.Config) (settings, error) {
	s := settings{
		host:           cfg.Hostname,
		port:           cfg.Port,
		user:           cfg.UserID,
		password:       cfg.Password,
		vhost:          cfg.VirtualHost,
		connectTimeout: cfg.ConnectTimeout,
		heartbeat:      cfg.Heartbeat,
		frameMax:       defaultFrameMax,
		recovery:       true,
		maxRetries:     -1,
		intervalStart:  2 * time.Second,
		intervalStep:   2 * time.Second,
		intervalMax:    30 * time.Second,
		closeTimeout:   5 * time.Second,
		logger:         cfg.Logger,
	}
	// pyamqp fills every falsy connection parameter with its default.
	if s.host == "" {
		s.host = defaultHost
	}
	if s.user == "" {
		s.user = defaultUser
	}
	if s.password == "" {
		s.password = defaultUser
	}
	if s.vhost == "" {
		s.vhost = "/"
	}
	if s.connectTimeout <= 0 {
		s.connectTimeout = DefaultConnectTimeout
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	opts := cfg.Options
	var err error
	if s.confirm, err = optBool(opts, "confirm_publish", false); err != nil {
		return s, err
	}
	if s.recovery, err = optBool(opts, "recovery", true); err != nil {
		return s, err
	}
	if v, ok := opts["connection_name"]; ok {
		s.connName = fmt.Sprint(v)
	}
	if v, ok := opts["client_properties"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return s, fmt.Errorf("%w: client_properties must be a map, not %T", ErrBadOption, v)
		}
		s.clientProps = m
	}
	if s.frameMax, err = optInt(opts, "frame_max", s.frameMax); err != nil {
		return s, err
	}
	if v, ok := opts["max_retries"]; ok {
		if str, isStr := v.(string); v == nil || (isStr && strings.EqualFold(str, "none")) {
			s.maxRetries = -1
		} else if s.maxRetries, err = optInt(opts, "max_retries", s.maxRetries); err != nil {
			return s, err
		}
	}
	for _, d := range []struct {
		key string
		p   *time.Duration
	}{
		{"interval_start", &s.intervalStart},
		{"interval_step", &s.intervalStep},
		{"interval_max", &s.intervalMax},
		{"close_timeout", &s.closeTimeout},
	} {
		if *d.p, err = optSeconds(opts, d.key, *d.p); err != nil {
			return s, err
		}
	}
	s.useTLS = cfg.TLS != nil || strings.EqualFold(cfg.Scheme, "amqps")
	tc, wantTLS, err := parseTLSOptions(opts)
	if err != nil {
		return s, err
	}
	s.useTLS = s.useTLS || wantTLS
	if s.useTLS {
		if s.tlsCfg, err = buildTLS(cfg.TLS, tc, s.host); err != nil {
			return s, err
		}
	}
	if s.port == 0 {
		s.port = DefaultPort
		if s.useTLS {
			s.port = DefaultTLSPort
		}
	}
	return s, nil
}

func optBool(opts map[string]any, key string, def bool) (bool, error) {
	v, ok := opts[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case int:
		return x != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "true", "yes", "on", "y":
			return true, nil
		case "0", "false", "no", "off", "n", "":
			return false, nil
		}
	}
	return def, fmt.Errorf("%w: %s=%v is not a boolean", ErrBadOption, key, v)
}

func optInt(opts map[string]any, key string, def int) (int, error) {
	v, ok := opts[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case float64:
		return int(x), nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err == nil {
			return n, nil
		}
	}
	return def, fmt.Errorf("%w: %s=%v is not an integer", ErrBadOption, key, v)
}

// optSeconds reads a duration given as seconds (Kombu's floats) or as a
// time.Duration.
func optSeconds(opts map[string]any, key string, def time.Duration) (time.Duration, error) {
	v, ok := opts[key]
	if !ok || v == nil {
		return def, nil
	}
	var f float64
	switch x := v.(type) {
	case time.Duration:
		return x, nil
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return def, fmt.Errorf("%w: %s=%q is not a number of seconds", ErrBadOption, key, x)
		}
	default:
		return def, fmt.Errorf("%w: %s=%v is not a number of seconds", ErrBadOption, key, v)
	}
	if f < 0 {
		return def, fmt.Errorf("%w: %s=%v is negative", ErrBadOption, key, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// dialBroker opens the TCP (and TLS) connection and runs the AMQP handshake.
// ctx and the connect timeout bound all of it.
func dialBroker(ctx context.Context, s *settings) (*amqp091.Connection, net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.connectTimeout)
	defer cancel()
	addr := net.JoinHostPort(s.host, strconv.Itoa(s.port))
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, &transport.BrokerError{Kind: transport.KindConnection,
			Reason: "dial " + addr, Err: err}
	}
	if s.useTLS {
		tc, err := tlsClient(ctx, nc, s)
		if err != nil {
			nc.Close()
			return nil, nil, &transport.BrokerError{Kind: transport.KindConnection,
				Reason: "TLS handshake with " + addr, Err: err}
		}
		nc = tc
	}
	// The handshake has no context: a deadline bounds it, and a cancelled
	// ctx moves the deadline to the past. amqp091 clears the deadline once
	// the connection is open.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	props := amqp091.Table{
		"product":     "kombu-go",
		"platform":    "Go",
		"information": "github.com/kombu-go/kombu",
	}
	for k, v := range s.clientProps {
		if tv, err := toField(v); err == nil {
			props[k] = tv
		}
	}
	if s.connName != "" {
		props["connection_name"] = s.connName
	}
	ac, err := amqp091.Open(newFixConn(nc), amqp091.Config{
		SASL:       []amqp091.Authentication{&amqp091.PlainAuth{Username: s.user, Password: s.password}},
		Vhost:      s.vhost,
		Heartbeat:  s.heartbeat,
		FrameSize:  s.frameMax,
		Locale:     "en_US",
		Properties: props,
	})
	if !stop() && err == nil {
		// ctx ended while the handshake finished: the deadline may be set.
		ac.Close()
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		dl, _ := ctx.Deadline()
		if !isServerError(err) && (ctx.Err() != nil || !time.Now().Before(dl)) {
			ctxErr := ctx.Err()
			if ctxErr == nil {
				ctxErr = context.DeadlineExceeded
			}
			// amqp091 reports a socket closed during the handshake as bad
			// credentials; here the deadline closed it.
			return nil, nil, &transport.BrokerError{Kind: transport.KindConnection,
				Reason: "AMQP handshake with " + addr,
				Err:    fmt.Errorf("%w: %w", transport.ErrConnectionLost, ctxErr)}
		}
		return nil, nil, connError("AMQP handshake with "+addr, err)
	}
	return ac, nc, nil
}

func isServerError(err error) bool {
	var ae *amqp091.Error
	return errors.As(err, &ae) && ae.Server
}

// connError wraps a connection-level failure.
func connError(what string, err error) error {
	var ae *amqp091.Error
	if errors.As(err, &ae) && ae != amqp091.ErrClosed {
		return &transport.BrokerError{Kind: transport.KindConnection, Code: ae.Code,
			Reason: ae.Reason}
	}
	return &transport.BrokerError{Kind: transport.KindConnection, Reason: what,
		Err: fmt.Errorf("%w: %w", transport.ErrConnectionLost, err)}
}

// randomID returns 8 random hex digits, used to make consumer tags unique
// across processes.
func randomID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano()&0xffffffff, 16)
	}
	return hex.EncodeToString(b[:])
}
