package amqp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
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
	// DefaultConnectTimeout is Kombu's connect_timeout, used when
	// Options.ConnectTimeout is zero.
	DefaultConnectTimeout = 5 * time.Second
	defaultFrameMax       = 131072
	defaultUser           = "guest"
	defaultHost           = "localhost"
)

// Errors of this package. Broker refusals are *transport.BrokerError values;
// these sentinels cover what the transport itself decides. A bad or unknown
// option is a *transport.OptionError.
var (
	// ErrNacked is returned by Publish in confirm mode when the broker
	// answered basic.nack.
	ErrNacked = errors.New("amqp: message nacked by the broker")
	// ErrBadTableValue reports a header or argument value that has no AMQP
	// field-table type.
	ErrBadTableValue = errors.New("amqp: value has no AMQP table type")
	// ErrRecoveryFailed wraps the last error once connection recovery gave up.
	ErrRecoveryFailed = errors.New("amqp: connection recovery gave up")
	// ErrChannelMax is returned by Channel (and by a declaration that needs
	// the connection's declaration channel) when every channel number the
	// negotiated channel_max allows is in use.
	ErrChannelMax = errors.New("amqp: no channel number left (channel_max)")
)

// settings are the Options a Transport runs with, completed, and what
// they resolve to.
type settings struct {
	Options
	tls    *tls.Config // nil: plain TCP
	auth   []amqp091.Authentication
	logger *slog.Logger
}

// Transport dials RabbitMQ (or any AMQP 0-9-1 broker) with amqp091-go. Create
// it with [New] or [NewWithOptions]; it is safe for concurrent use.
type Transport struct {
	s settings
}

// New reads cfg with [ParseConfig] and returns the transport
// ([NewWithOptions]). It does not connect. Errors are those of both: a
// *transport.OptionError for an unknown, refused or malformed option, or
// for TLS files that cannot be read.
func New(cfg transport.Config) (*Transport, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithOptions(o)
}

// NewWithOptions returns the transport for o (copied; the caller may reuse
// it). Empty fields that have no meaning as zero take their defaults:
// Hostname, UserID, Password, VirtualHost, Port, LoginMethod, Locale,
// ConnectTimeout and CloseTimeout. It checks o and reads the TLS files of
// o.SSL, failing with a *transport.OptionError; it does not connect.
func NewWithOptions(o Options) (*Transport, error) {
	o = o.clone()
	def := DefaultOptions()
	for _, f := range []struct{ dst, def *string }{
		{&o.Hostname, &def.Hostname}, {&o.UserID, &def.UserID}, {&o.Password, &def.Password},
		{&o.VirtualHost, &def.VirtualHost}, {&o.LoginMethod, &def.LoginMethod}, {&o.Locale, &def.Locale},
	} {
		if *f.dst == "" {
			*f.dst = *f.def
		}
	}
	o.LoginMethod = strings.ToUpper(o.LoginMethod)
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = def.ConnectTimeout
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = def.CloseTimeout
	}
	if o.Heartbeat > 0 && o.Heartbeat < time.Second {
		o.Heartbeat = time.Second // AMQP counts whole seconds
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = -1
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	s := settings{Options: o, logger: o.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.tls, err = tlsConfig(&s.Options); err != nil {
		return nil, err
	}
	if s.Port == 0 {
		s.Port = DefaultPort
		if s.tls != nil {
			s.Port = DefaultTLSPort
		}
	}
	switch s.LoginMethod {
	case LoginPlain:
		s.auth = []amqp091.Authentication{&amqp091.PlainAuth{Username: s.UserID, Password: s.Password}}
	case LoginAMQPlain:
		s.auth = []amqp091.Authentication{&amqp091.AMQPlainAuth{Username: s.UserID, Password: s.Password}}
	case LoginExternal:
		if s.tls == nil || (len(s.tls.Certificates) == 0 && s.tls.GetClientCertificate == nil) {
			return nil, &transport.OptionError{Transport: "amqp", Key: "login_method", Value: s.LoginMethod,
				Reason: "EXTERNAL needs a TLS client certificate: set ssl_certfile and ssl_keyfile (or TLS.Certificates)"}
		}
		// Only EXTERNAL is offered, so a broker without it refuses the
		// login: it never falls back to PLAIN.
		s.auth = []amqp091.Authentication{&amqp091.ExternalAuth{}}
	default:
		s.auth = []amqp091.Authentication{rawAuth{mech: s.LoginMethod, resp: s.LoginResponse}}
	}
	for k, v := range s.ClientProperties {
		if _, err := toField(v); err != nil {
			return nil, &transport.OptionError{Transport: "amqp", Key: "client_properties", Value: k,
				Reason: err.Error()}
		}
	}
	return &Transport{s: s}, nil
}

// rawAuth is a SASL mechanism given by name with its response
// (login_method with login_response).
type rawAuth struct{ mech, resp string }

func (a rawAuth) Mechanism() string { return a.mech }
func (a rawAuth) Response() string  { return a.resp }

// Options returns the options the transport runs with (defaults filled
// in). TLS is the resolved configuration, nil without TLS.
func (t *Transport) Options() Options {
	o := t.s.Options.clone()
	if t.s.tls != nil {
		o.TLS = t.s.tls.Clone()
	}
	return o
}

// Info describes the transport.
func (t *Transport) Info() transport.Info {
	port := DefaultPort
	if t.s.tls != nil {
		port = DefaultTLSPort
	}
	return transport.Info{
		Driver:        "amqp",
		DefaultPort:   port,
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout, transport.Headers},
		Priorities:    true,
		Fanout:        "broadcast",
		Heartbeats:    t.s.Heartbeat > 0,
		Confirms:      t.s.ConfirmPublish,
	}
}

// Dial connects to the broker and attaches the connection to h. The context
// bounds the TCP connect, the TLS handshake and the AMQP handshake, together
// with Options.ConnectTimeout.
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

// dialBroker opens the TCP (and TLS) connection and runs the AMQP handshake.
// ctx and the connect timeout bound all of it.
func dialBroker(ctx context.Context, s *settings) (*amqp091.Connection, net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.ConnectTimeout)
	defer cancel()
	addr := net.JoinHostPort(s.Hostname, strconv.Itoa(s.Port))
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, &transport.BrokerError{Kind: transport.KindConnection,
			Reason: "dial " + addr, Err: err}
	}
	if s.tls != nil {
		tc, err := tlsClient(ctx, nc, s)
		if err != nil {
			nc.Close()
			return nil, nil, &transport.BrokerError{Kind: transport.KindConnection,
				Reason: "TLS handshake with " + addr, Err: err}
		}
		nc = tc
	}
	tc := newTimeoutConn(nc, s.ReadTimeout, s.WriteTimeout)
	nc = tc
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
	for k, v := range s.ClientProperties {
		if tv, err := toField(v); err == nil { // checked by NewWithOptions
			props[k] = tv
		}
	}
	if s.ConnectionName != "" {
		props["connection_name"] = s.ConnectionName
	}
	ac, err := amqp091.Open(newFixConn(nc, s.Heartbeat <= 0), amqp091.Config{
		SASL:       s.auth,
		Vhost:      s.VirtualHost,
		Heartbeat:  s.Heartbeat,
		ChannelMax: uint16(s.ChannelMax),
		FrameSize:  s.FrameMax,
		Locale:     s.Locale,
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
		return nil, nil, handshakeError(s, addr, err)
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

// handshakeError is connError for a failed AMQP handshake; a refused
// login names the login method.
func handshakeError(s *settings, addr string, err error) error {
	what := "AMQP handshake with " + addr
	if s.tls != nil {
		// TLS 1.3 servers check the client certificate after the client's
		// handshake is done: a refusal arrives as an alert or a reset here.
		what += " over TLS (a broker that refuses the client certificate closes the connection here)"
	}
	e := connError(what, err)
	var be *transport.BrokerError
	if errors.As(e, &be) && be.Code == 403 {
		be.Reason = "login_method=" + s.LoginMethod + " refused: " + be.Reason
		if errors.Is(err, amqp091.ErrSASL) {
			be.Reason += " (the broker does not offer " + s.LoginMethod + ")"
		}
	}
	return e
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

var _ transport.ExchangeBinder = (*channel)(nil)
