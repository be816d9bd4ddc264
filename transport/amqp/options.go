package amqp

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// Login methods (Options.LoginMethod).
const (
	// LoginPlain is SASL PLAIN with UserID and Password (Kombu's default).
	LoginPlain = "PLAIN"
	// LoginAMQPlain is RabbitMQ's AMQPLAIN with UserID and Password.
	LoginAMQPlain = "AMQPLAIN"
	// LoginExternal is SASL EXTERNAL: the broker takes the identity from
	// the TLS client certificate (RabbitMQ's rabbitmq_auth_mechanism_ssl
	// plugin). It needs TLS with a client certificate and never falls back
	// to PLAIN: a broker that does not offer EXTERNAL refuses the login.
	LoginExternal = "EXTERNAL"
)

// Options is the typed configuration of the transport: every Kombu
// connection field and pyamqp transport option the transport reads. Start
// from [DefaultOptions] (the zero value turns recovery off and retries
// without waiting), or let [ParseConfig] fill it from a transport.Config.
// Each field names its Kombu option and Kombu's default; "ours" marks
// options Kombu does not have.
type Options struct {
	// Hostname, Port, UserID, Password and VirtualHost address the broker
	// (Kombu's Connection fields). Defaults, as pyamqp fills every empty
	// one: localhost, 5672 (5671 with TLS), guest, guest, "/".
	Hostname    string
	Port        int
	UserID      string
	Password    string
	VirtualHost string

	// LoginMethod is the SASL mechanism (login_method; Kombu: PLAIN): one
	// of [LoginPlain], [LoginAMQPlain], [LoginExternal], or any other name
	// together with LoginResponse. GSSAPI is refused (not implemented).
	LoginMethod string
	// LoginResponse is the raw SASL response sent with a LoginMethod this
	// package does not know (login_response; Kombu: none).
	LoginResponse string
	// Locale is sent in connection.start-ok (locale; Kombu: en_US).
	Locale string

	// ConnectTimeout bounds the TCP connect, the TLS handshake and the AMQP
	// handshake together (connect_timeout; Kombu's Connection: 5 s).
	ConnectTimeout time.Duration
	// Heartbeat is the heartbeat interval to propose (heartbeat; Kombu: 0).
	// 0 disables heartbeats, as in pyamqp: the client answers
	// connection.tune with 0 whatever the broker proposed. Otherwise the
	// smaller of this and the broker's value is used, in whole seconds (at
	// least 1 s). amqp091 then drops a connection on which nothing arrived
	// for three intervals.
	Heartbeat time.Duration
	// ChannelMax is the most channels to negotiate (channel_max; pyamqp:
	// 65535, though pyamqp 5.x then takes the broker's value). The smaller
	// of this and the broker's channel_max wins (0: the broker's); opening
	// more fails with an error naming the limit.
	ChannelMax int
	// FrameMax is the largest frame to negotiate (frame_max; Kombu:
	// 131072).
	FrameMax int
	// ReadTimeout bounds how long the broker may stay silent while the
	// client waits for an answer: a declaration, bind, get, qos, consume,
	// channel open or close, or a publisher confirm (read_timeout; pyamqp:
	// none, its SO_RCVTIMEO). When it passes, the connection is dropped
	// as lost (and recovered, if Recovery is on); the waiting call fails
	// with a connection error. An idle connection that waits for nothing
	// is never dropped by it (that is the heartbeats' job). A connection
	// the broker blocks (a memory or disk alarm) sends nothing but
	// heartbeats either: with heartbeats off, a confirm awaited through an
	// alarm longer than ReadTimeout drops the connection. 0: no bound.
	ReadTimeout time.Duration
	// WriteTimeout bounds each socket write (write_timeout; pyamqp: none,
	// its SO_SNDTIMEO). A write that cannot complete in time (the broker
	// stopped reading) drops the connection as lost; the publishing call
	// fails with a connection error. 0: no bound.
	WriteTimeout time.Duration

	// TLS, when non-nil, turns TLS on with this configuration (cloned).
	// SSL, when non-nil, turns TLS on too and adjusts a clone of TLS (or a
	// new configuration) with Kombu's ssl dict.
	TLS *tls.Config
	SSL *SSLOptions

	// ClientProperties are extra client properties sent in
	// connection.start-ok (client_properties; Kombu: none). Values must
	// have an AMQP table type.
	ClientProperties map[string]any
	// ConnectionName is the client-provided connection name the broker's
	// management tools show (connection_name; ours).
	ConnectionName string
	// ConfirmPublish puts every channel in confirm mode: Publish waits for
	// basic.ack and fails with [ErrNacked] on a nack (confirm_publish;
	// Kombu: false).
	ConfirmPublish bool

	// Recovery reconnects after a connection loss and restores channels,
	// topology and consumers (recovery; ours, default true). See the
	// package documentation, # Connection recovery.
	Recovery bool
	// MaxRetries bounds the retries of each recovery; negative: unlimited
	// (max_retries; Kombu: None, unlimited). IntervalStart, IntervalStep
	// and IntervalMax are the waits between attempts (interval_start,
	// interval_step, interval_max; Kombu: 2 s, 2 s, 30 s): the first
	// attempt is immediate, then interval_start, +interval_step, ... up to
	// interval_max+interval_start, as Kombu's retry_over_time.
	MaxRetries    int
	IntervalStart time.Duration
	IntervalStep  time.Duration
	IntervalMax   time.Duration
	// ConnectRetriesTimeout bounds the whole of one recovery
	// (connect_retries_timeout; Kombu bounds a lazy connect with it, which
	// messaging.Connection does too). 0: no bound beyond MaxRetries.
	ConnectRetriesTimeout time.Duration
	// CloseTimeout is how long Close waits for the broker before cutting
	// the socket (close_timeout; ours, default 5 s).
	CloseTimeout time.Duration

	// Logger receives the transport's diagnostics; nil discards them.
	Logger *slog.Logger
}

// SSLOptions are Kombu's ssl dict for pyamqp (the ssl transport option as
// a map, or the ssl_* URL parameters).
type SSLOptions struct {
	// CACerts is a PEM file of the CAs to trust (ca_certs); empty: the
	// system roots (or TLS.RootCAs).
	CACerts string
	// CertFile and KeyFile are the client certificate and key, PEM
	// (certfile, keyfile). The key may sit in CertFile, as Python allows.
	CertFile string
	KeyFile  string
	// CertReqs is CERT_REQUIRED (the default), CERT_OPTIONAL (verified all
	// the same: a client always gets the server's certificate) or
	// CERT_NONE (no verification) (cert_reqs).
	CertReqs string
	// ServerHostname is the name to verify and to send as SNI
	// (server_hostname; default: Hostname).
	ServerHostname string
	// CheckHostname false verifies the chain but not the name
	// (check_hostname; default true).
	CheckHostname *bool
}

// DefaultOptions returns Kombu's defaults (and this package's for the
// options Kombu does not have).
func DefaultOptions() Options {
	return Options{
		Hostname:       defaultHost,
		UserID:         defaultUser,
		Password:       defaultUser,
		VirtualHost:    "/",
		LoginMethod:    LoginPlain,
		Locale:         "en_US",
		ConnectTimeout: DefaultConnectTimeout,
		FrameMax:       defaultFrameMax,
		Recovery:       true,
		MaxRetries:     -1,
		IntervalStart:  2 * time.Second,
		IntervalStep:   2 * time.Second,
		IntervalMax:    30 * time.Second,
		CloseTimeout:   5 * time.Second,
	}
}

// sslKeys are the keys of Kombu's ssl dict, as they appear inside the ssl
// map and, with the "ssl_" prefix, as URL parameters.
var sslKeys = []string{"ca_certs", "certfile", "keyfile", "cert_reqs", "server_hostname", "check_hostname"}

// refused are options Kombu's pyamqp takes that this transport refuses,
// with the reason.
var refused = map[string]string{
	"authentication": "Python SASL objects; use login_method (and login_response)",
	"on_open":        "a Python callable; the transport reports the connection through Dial",
	"on_blocked":     "a Python callable; use messaging.Connection.OnBlocked or amqp.Blocker",
	"on_unblocked":   "a Python callable; use messaging.Connection.OnUnblocked or amqp.Blocker",
	"on_tune_ok":     "a Python callable; not supported",
	"frame_handler":  "a Python callable; not supported",
	"frame_writer":   "a Python callable; not supported",
	"socket_settings": "TCP socket options (TCP_NODELAY is always on; keepalive is Go's default); " +
		"not supported",
	"host":     "give the broker address in the URL (transport.Config.Hostname, Port)",
	"userid":   "give the user in the URL (transport.Config.UserID)",
	"password": "give the password in the URL (transport.Config.Password)",
}

// ParseConfig reads cfg into Options, starting from [DefaultOptions]: the
// Config fields, then every transport option (Kombu's transport_options
// and the URL's query, in cfg.Options), which win over the fields as they
// do in pyamqp. It is the one place where options are read; [New] is
// ParseConfig then [NewWithOptions].
//
// An unknown key is an error (a *transport.OptionError naming it and
// listing the valid ones), unlike Kombu, which ignores it: a misspelt
// option must not be silently ignored. Options pyamqp takes that cannot
// work here (Python callables, socket_settings) are refused with the
// reason. A value that cannot be coerced is a *transport.OptionError too.
// The options are listed on [Options]; the ssl ones are ssl (a bool, or a
// map of Kombu's ssl dict keys: ca_certs, certfile, keyfile, cert_reqs,
// server_hostname, check_hostname, also accepted with an ssl_ prefix) and
// the same keys as ssl_* parameters. insist (an AMQP 0-8 leftover Kombu
// always sends as false) is accepted when false.
func ParseConfig(cfg transport.Config) (Options, error) {
	o := DefaultOptions()
	setIf := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setIf(&o.Hostname, cfg.Hostname)
	setIf(&o.UserID, cfg.UserID)
	setIf(&o.Password, cfg.Password)
	setIf(&o.VirtualHost, cfg.VirtualHost)
	o.Port = cfg.Port
	if cfg.ConnectTimeout > 0 {
		o.ConnectTimeout = cfg.ConnectTimeout
	}
	o.Heartbeat = max(cfg.Heartbeat, 0)
	o.TLS = cfg.TLS
	o.Logger = cfg.Logger

	r := optmap.New("amqp", cfg.Options)
	r.String("login_method", &o.LoginMethod)
	r.String("login_response", &o.LoginResponse)
	r.String("locale", &o.Locale)
	r.Seconds("connect_timeout", &o.ConnectTimeout)
	r.Seconds("heartbeat", &o.Heartbeat)
	r.Int("channel_max", &o.ChannelMax)
	r.Int("frame_max", &o.FrameMax)
	r.Seconds("read_timeout", &o.ReadTimeout)
	r.Seconds("write_timeout", &o.WriteTimeout)
	if m, ok := r.Map("client_properties"); ok {
		o.ClientProperties = m
	}
	r.String("connection_name", &o.ConnectionName)
	r.Bool("confirm_publish", &o.ConfirmPublish)
	r.Bool("recovery", &o.Recovery)
	if v, ok := r.Lookup("max_retries"); ok {
		if s, isStr := v.(string); isStr && strings.EqualFold(strings.TrimSpace(s), "none") {
			o.MaxRetries = -1
		} else if r.Int("max_retries", &o.MaxRetries) && o.MaxRetries < 0 {
			o.MaxRetries = -1
		}
	} else {
		o.MaxRetries = -1 // absent or None: unlimited
	}
	r.Seconds("interval_start", &o.IntervalStart)
	r.Seconds("interval_step", &o.IntervalStep)
	r.Seconds("interval_max", &o.IntervalMax)
	r.Seconds("connect_retries_timeout", &o.ConnectRetriesTimeout)
	r.Seconds("close_timeout", &o.CloseTimeout)
	var insist bool
	if r.Bool("insist", &insist) && insist {
		r.Fail("insist", true, "insist=true is an AMQP 0-8 request RabbitMQ does not honour; not supported")
	}
	for k, reason := range refused {
		if v, ok := r.Lookup(k); ok {
			r.Fail(k, v, "not supported: "+reason)
		}
	}
	ssl, sslErr := readSSL(r)
	o.SSL = ssl
	if o.SSL == nil && o.TLS == nil && strings.EqualFold(cfg.Scheme, "amqps") {
		o.SSL = &SSLOptions{}
	}
	for _, d := range []struct {
		k string
		v time.Duration
	}{
		{"connect_timeout", o.ConnectTimeout}, {"heartbeat", o.Heartbeat},
		{"read_timeout", o.ReadTimeout}, {"write_timeout", o.WriteTimeout},
		{"interval_start", o.IntervalStart}, {"interval_step", o.IntervalStep},
		{"interval_max", o.IntervalMax}, {"connect_retries_timeout", o.ConnectRetriesTimeout},
		{"close_timeout", o.CloseTimeout},
	} {
		if d.v < 0 {
			r.Fail(d.k, d.v.Seconds(), "must not be negative")
		}
	}
	if err := r.Err(); err != nil {
		return o, err
	}
	if sslErr != nil {
		return o, sslErr
	}
	return o, o.check()
}

// readSSL reads ssl (bool or map) and the ssl_* keys. It returns nil when
// they do not ask for TLS. The error is about a key of the ssl map.
func readSSL(r *optmap.Reader) (*SSLOptions, error) {
	var so SSLOptions
	want := false
	var inner *optmap.Reader
	if v, ok := r.Lookup("ssl"); ok {
		if m, err := optmap.AsMap(v); err == nil { // a map, or JSON object text
			want = true
			// The ssl map holds Kombu's ssl dict; messaging passes the
			// URL's ssl_* parameters in it with their prefix.
			inner = optmap.New("amqp: option ssl", m)
		} else {
			r.Bool("ssl", &want)
		}
	}
	read := func(rd *optmap.Reader, prefix string) {
		str := func(k string, dst *string) {
			if rd.String(prefix+k, dst) {
				want = true
			}
		}
		str("ca_certs", &so.CACerts)
		str("certfile", &so.CertFile)
		str("keyfile", &so.KeyFile)
		if v, ok := rd.Lookup(prefix + "cert_reqs"); ok {
			want = true
			// CERT_REQUIRED, ssl.CERT_REQUIRED, required, or Python's numbers.
			s := strings.ToUpper(strings.TrimSpace(fmt.Sprint(v)))
			s = strings.TrimPrefix(strings.TrimPrefix(s, "SSL."), "CERT_")
			switch s {
			case "REQUIRED", "2":
				so.CertReqs = "CERT_REQUIRED"
			case "OPTIONAL", "1":
				so.CertReqs = "CERT_OPTIONAL"
			case "NONE", "0":
				so.CertReqs = "CERT_NONE"
			default:
				rd.Fail(prefix+"cert_reqs", v, "want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE")
			}
		}
		str("server_hostname", &so.ServerHostname)
		var check bool
		if rd.Bool(prefix+"check_hostname", &check) {
			so.CheckHostname, want = &check, true
		}
	}
	read(r, "ssl_")
	if inner != nil {
		read(inner, "")
		read(inner, "ssl_")
		if err := inner.Err(); err != nil {
			return nil, err
		}
	}
	if !want {
		return nil, nil
	}
	return &so, nil
}

// check validates values that no coercion catches.
func (o *Options) check() error {
	fail := func(k string, v any, reason string) error {
		return &transport.OptionError{Transport: "amqp", Key: k, Value: v, Reason: reason}
	}
	switch strings.ToUpper(o.LoginMethod) {
	case "", LoginPlain, LoginAMQPlain:
	case LoginExternal:
		if o.TLS == nil && o.SSL == nil {
			return fail("login_method", o.LoginMethod,
				"EXTERNAL takes the identity from a TLS client certificate: turn TLS on (amqps://, ssl, ssl_certfile)")
		}
	case "GSSAPI":
		return fail("login_method", o.LoginMethod, "GSSAPI (Kerberos) is not supported")
	default:
		if o.LoginResponse == "" {
			return fail("login_method", o.LoginMethod,
				"unknown mechanism: want PLAIN, AMQPLAIN or EXTERNAL, or give login_response for a custom one")
		}
	}
	if o.ChannelMax < 0 || o.ChannelMax > 65535 {
		return fail("channel_max", o.ChannelMax, "want 0 to 65535")
	}
	if o.FrameMax < 0 || (o.FrameMax > 0 && o.FrameMax < 4096) {
		return fail("frame_max", o.FrameMax, "want at least 4096 (AMQP's minimum), or 0 for the broker's")
	}
	if o.Heartbeat > 65535*time.Second {
		return fail("heartbeat", o.Heartbeat.Seconds(), "want at most 65535 seconds")
	}
	if o.SSL != nil {
		switch o.SSL.CertReqs {
		case "", "CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE":
		default:
			return fail("ssl_cert_reqs", o.SSL.CertReqs, "want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE")
		}
	}
	return nil
}

// clone returns o with its maps and TLS settings copied.
func (o Options) clone() Options {
	o.ClientProperties = maps.Clone(o.ClientProperties)
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
	}
	if o.SSL != nil {
		s := *o.SSL
		o.SSL = &s
	}
	return o
}
