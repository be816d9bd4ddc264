package redis

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// Kombu's defaults (kombu-spec §1.15).
const (
	defaultPort          = 6379
	defaultSentinelPort  = 26379
	defaultSep           = "\x06\x16"
	defaultFanoutPrefix  = "/{db}."
	defaultBRPOPTimeout  = time.Second
	defaultVisibility    = time.Hour
	defaultMutexExpire   = 300 * time.Second
	defaultRestoreEvery  = 10 * time.Second
	defaultThrottle      = 10
	defaultHealthCheck   = 25 * time.Second
	defaultMaxConns      = 10
	defaultConnectTimout = 5 * time.Second
)

// options is a transport.Config resolved into everything the transport
// needs. It is immutable once built.
type options struct {
	// Where and how to connect.
	network     string // "tcp" or "unix"
	addr        string // host:port, or the socket path
	host        string // for TLS server names
	sentinels   []string
	masterName  string
	sentinelUsr string
	sentinelPwd string
	username    string
	password    string
	db          int
	tls         *tls.Config
	clientName  string
	connTimeout time.Duration
	sockTimeout time.Duration // 0: go-redis's default
	keepAlive   time.Duration // 0: the net.Dialer default; <0: off
	maxConns    int
	healthCheck time.Duration
	retryOnTO   bool
	// noTracking keeps the consume socket in RESP2 without CLIENT TRACKING,
	// as against a server that refuses them (tests only).
	noTracking bool

	// Kombu's channel options.
	bodyEncoding    string
	sep             string
	ackEmulation    bool
	unackedKey      string // not prefixed
	unackedIndexKey string
	unackedMutexKey string
	mutexExpire     time.Duration
	visibility      time.Duration
	restoreLimit    int // 0: no LIMIT
	restoreInterval time.Duration
	restoreThrottle int
	fanoutPrefix    string // with {db} filled in
	fanoutPatterns  bool
	prefix          string // global_keyprefix
	queueOrder      string
	steps           []int
	brpopTimeout    time.Duration

	chanOpts channel.Options
	log      *slog.Logger
	scheme   string
}

// parseOptions resolves cfg (kombu-spec §1.2 and §1.15). Option values may
// be typed (from code) or strings (from a URL's query).
func parseOptions(cfg transport.Config) (*options, error) {
	o := &options{
		network:         "tcp",
		bodyEncoding:    envelope.BodyBase64,
		sep:             defaultSep,
		ackEmulation:    true,
		unackedKey:      "unacked",
		unackedIndexKey: "unacked_index",
		unackedMutexKey: "unacked_mutex",
		mutexExpire:     defaultMutexExpire,
		visibility:      defaultVisibility,
		restoreInterval: defaultRestoreEvery,
		restoreThrottle: defaultThrottle,
		fanoutPatterns:  true,
		queueOrder:      channel.RoundRobin,
		steps:           []int{0, 3, 6, 9},
		brpopTimeout:    defaultBRPOPTimeout,
		connTimeout:     defaultConnectTimout,
		maxConns:        defaultMaxConns,
		healthCheck:     defaultHealthCheck,
		username:        cfg.UserID,
		password:        cfg.Password,
		clientName:      "",
		log:             cfg.Logger,
		scheme:          strings.ToLower(cfg.Scheme),
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if cfg.ConnectTimeout > 0 {
		o.connTimeout = cfg.ConnectTimeout
	}
	// A copy: setTLS merges Kombu's ssl dict into it.
	p := optParser{opts: maps.Clone(cfg.Options)}

	// Where: redis[s]://host:port/db, redis+socket:///path, sentinel://.
	vhost := cfg.VirtualHost
	switch {
	case o.scheme == "redis+socket" || o.scheme == "socket" || strings.HasPrefix(cfg.Hostname, "socket://"):
		o.network = "unix"
		path, inVHost, err := socketPath(cfg)
		if err != nil {
			return nil, err
		}
		o.addr = path
		if u, err := url.Parse(cfg.Hostname); err == nil && u.Scheme == "socket" && u.User != nil {
			// Kombu: socket://:password@/path
			if pw, ok := u.User.Password(); ok {
				o.password = pw
			}
			if name := u.User.Username(); name != "" {
				o.username = name
			}
		}
		if inVHost {
			vhost = ""
		}
		if v, ok := p.lookup("virtual_host"); ok { // ?virtual_host=3 selects the db
			vhost = fmt.Sprint(v)
		}
	case o.scheme == "sentinel":
		port := cfg.Port
		if port == 0 {
			port = defaultSentinelPort
		}
		o.sentinels = append(o.sentinels, net.JoinHostPort(hostOrDefault(cfg.Hostname), strconv.Itoa(port)))
		for _, alt := range cfg.Alternates {
			u, err := url.Parse(alt)
			if err != nil || !strings.EqualFold(u.Scheme, "sentinel") {
				continue
			}
			port := u.Port()
			if port == "" {
				port = strconv.Itoa(defaultSentinelPort)
			}
			a := net.JoinHostPort(hostOrDefault(u.Hostname()), port)
			if !contains(o.sentinels, a) {
				o.sentinels = append(o.sentinels, a)
			}
		}
		o.masterName = p.str("master_name", "")
		if o.masterName == "" {
			return nil, fmt.Errorf("redis: sentinel: the master_name transport option is required")
		}
		if kw, ok := p.lookup("sentinel_kwargs"); ok {
			m, err := asMap(kw)
			if err != nil {
				return nil, fmt.Errorf("redis: sentinel_kwargs: %w", err)
			}
			o.sentinelUsr, _ = m["username"].(string)
			o.sentinelPwd, _ = m["password"].(string)
		}
	default:
		if cfg.Hostname != "" && strings.HasPrefix(cfg.Hostname, "/") {
			o.network, o.addr = "unix", cfg.Hostname
			break
		}
		port := cfg.Port
		if port == 0 {
			port = defaultPort
		}
		o.host = hostOrDefault(cfg.Hostname)
		o.addr = net.JoinHostPort(o.host, strconv.Itoa(port))
	}
	if o.host == "" && o.network == "tcp" && len(o.sentinels) == 0 {
		o.host = hostOrDefault(cfg.Hostname)
	}
	db, err := parseDB(vhost)
	if err != nil {
		return nil, err
	}
	o.db = db

	o.clientName = p.str("client_name", "")
	o.bodyEncoding = p.str("body_encoding", o.bodyEncoding)
	if o.bodyEncoding != "" && !strings.EqualFold(o.bodyEncoding, envelope.BodyBase64) &&
		!strings.EqualFold(o.bodyEncoding, envelope.BodyUTF8) {
		return nil, fmt.Errorf("redis: body_encoding %q: only base64 and utf-8 exist", o.bodyEncoding)
	}
	o.sep = p.str("sep", o.sep)
	if o.sep == "" {
		return nil, errors.New("redis: sep must not be empty")
	}
	o.ackEmulation = p.boolean("ack_emulation", true)
	o.unackedKey = p.str("unacked_key", o.unackedKey)
	o.unackedIndexKey = p.str("unacked_index_key", o.unackedIndexKey)
	o.unackedMutexKey = p.str("unacked_mutex_key", o.unackedMutexKey)
	o.mutexExpire = p.seconds("unacked_mutex_expire", o.mutexExpire)
	o.visibility = p.seconds("visibility_timeout", o.visibility)
	o.restoreLimit = p.integer("unacked_restore_limit", 0)
	o.restoreInterval = p.seconds("unacked_restore_interval", o.restoreInterval)
	if o.restoreInterval <= 0 {
		o.restoreInterval = defaultRestoreEvery // Kombu: <=0 falls back to 10
	}
	o.restoreThrottle = p.integer("unacked_restore_throttle", o.restoreThrottle)
	o.fanoutPatterns = p.boolean("fanout_patterns", true)
	o.prefix = p.str("global_keyprefix", "")
	o.queueOrder = p.str("queue_order_strategy", o.queueOrder)
	if _, err := channel.NewCycle(o.queueOrder); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if v, ok := p.lookup("priority_steps"); ok {
		steps, err := asInts(v)
		if err != nil || len(steps) == 0 {
			return nil, fmt.Errorf("redis: priority_steps %v: want a non-empty list of integers", v)
		}
		o.steps = steps
	}
	// Kombu 5.6: polling_interval, when set, is also the BRPOP timeout.
	o.brpopTimeout = p.seconds("polling_interval", o.brpopTimeout)
	o.brpopTimeout = p.seconds("brpop_timeout", o.brpopTimeout)
	if o.brpopTimeout <= 0 {
		o.brpopTimeout = defaultBRPOPTimeout
	}
	o.connTimeout = p.seconds("socket_connect_timeout", o.connTimeout)
	o.sockTimeout = p.seconds("socket_timeout", 0)
	if !p.boolean("socket_keepalive", true) {
		o.keepAlive = -1
	}
	o.retryOnTO = p.boolean("retry_on_timeout", false)
	o.maxConns = p.integer("max_connections", o.maxConns)
	if o.maxConns <= 0 {
		o.maxConns = defaultMaxConns
	}
	o.healthCheck = p.seconds("health_check_interval", o.healthCheck)

	// fanout_prefix: True (the default template), False (none), or a
	// template of its own; {db} is the numeric database.
	tmpl := defaultFanoutPrefix
	if v, ok := p.lookup("fanout_prefix"); ok {
		switch x := v.(type) {
		case bool:
			if !x {
				tmpl = ""
			}
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				if !b {
					tmpl = ""
				}
			} else {
				tmpl = x
			}
		default:
			return nil, fmt.Errorf("redis: fanout_prefix: want a bool or a string, got %T", v)
		}
	}
	o.fanoutPrefix = strings.ReplaceAll(tmpl, "{db}", strconv.Itoa(o.db))

	if err := o.setTLS(cfg, &p); err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}

	co, err := channel.ParseOptions(cfg.Options)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	co.VHost = "/"
	if cfg.VirtualHost != "" && o.network == "tcp" {
		co.VHost = cfg.VirtualHost
	}
	co.Logger = o.log
	o.chanOpts = co
	return o, nil
}

// parseDB applies Kombu's rule: "" and "/" are 0, a leading "/" is
// stripped, the rest must be an integer.
func parseDB(vhost string) (int, error) {
	s := strings.TrimPrefix(vhost, "/")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("redis: Database is int between 0 and limit - 1, not %s", s)
	}
	return n, nil
}

// socketPath finds the unix socket path of a redis+socket URL: in Kombu's
// form (the hostname "socket:///path"), as an absolute Hostname, or in
// VirtualHost (inVHost).
func socketPath(cfg transport.Config) (path string, inVHost bool, err error) {
	if rest, ok := strings.CutPrefix(cfg.Hostname, "socket://"); ok {
		u, err := url.Parse("socket://" + rest)
		if err != nil {
			return "", false, fmt.Errorf("redis: socket URL %q: %w", cfg.Hostname, err)
		}
		if u.Path != "" {
			return "/" + strings.TrimPrefix(u.Path, "/"), false, nil
		}
	}
	switch {
	case strings.HasPrefix(cfg.Hostname, "/"):
		return cfg.Hostname, false, nil
	case cfg.VirtualHost != "" && cfg.VirtualHost != "/":
		return "/" + strings.TrimPrefix(cfg.VirtualHost, "/"), true, nil
	}
	return "", false, fmt.Errorf("redis: %s URL without a socket path", cfg.Scheme)
}

func hostOrDefault(h string) string {
	if h == "" {
		return "127.0.0.1"
	}
	return h
}

// setTLS resolves TLS: cfg.TLS wins; otherwise rediss:// or ssl_* options
// build a configuration the way redis-py reads them.
func (o *options) setTLS(cfg transport.Config, p *optParser) error {
	if cfg.TLS != nil {
		o.tls = cfg.TLS.Clone()
		if o.tls.ServerName == "" {
			o.tls.ServerName = o.host
		}
		return nil
	}
	has := o.scheme == "rediss"
	for k := range cfg.Options {
		if strings.HasPrefix(k, "ssl_") {
			has = true
		}
	}
	if v, ok := p.lookup("ssl"); ok {
		if b, err := asBool(v); err == nil {
			has = has || b
		} else if m, err := asMap(v); err == nil {
			for k, x := range m { // Kombu's Connection(ssl={...})
				if p.opts == nil {
					p.opts = make(map[string]any)
				}
				if _, set := p.opts[k]; !set {
					p.opts[k] = x
				}
			}
			has = true
		}
	}
	if !has {
		return nil
	}
	c := &tls.Config{ServerName: o.host, MinVersion: tls.VersionTLS12}
	reqs := strings.ToLower(strings.TrimPrefix(strings.ToLower(p.str("ssl_cert_reqs", "none")), "cert_"))
	if _, given := p.lookup("ssl_cert_reqs"); !given {
		o.log.Warn("redis: rediss:// without ssl_cert_reqs: the server certificate is not verified (as Kombu does)")
	}
	verify := false
	switch reqs {
	case "none":
	case "required", "optional":
		verify = true
	default:
		return fmt.Errorf("redis: ssl_cert_reqs %q: want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE", reqs)
	}
	if ca := p.str("ssl_ca_certs", ""); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("redis: ssl_ca_certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("redis: ssl_ca_certs %s: no certificate found", ca)
		}
		c.RootCAs = pool
	}
	if cert := p.str("ssl_certfile", ""); cert != "" {
		key := p.str("ssl_keyfile", cert)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("redis: ssl_certfile: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	// redis-py's ssl_check_hostname defaults to false: the chain is
	// verified, the name is not.
	checkHost := p.boolean("ssl_check_hostname", false)
	switch {
	case !verify:
		c.InsecureSkipVerify = true
	case !checkHost:
		c.InsecureSkipVerify = true
		roots := c.RootCAs
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("redis: TLS server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	o.tls = c
	return nil
}

// optParser reads transport options, remembering the first error.
type optParser struct {
	opts map[string]any
	err  error
}

func (p *optParser) lookup(k string) (any, bool) {
	v, ok := p.opts[k]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

func (p *optParser) fail(k string, v any, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("redis: transport option %s=%v: want %s", k, v, want)
	}
}

func (p *optParser) str(k, def string) string {
	v, ok := p.lookup(k)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case fmt.Stringer:
		return x.String()
	}
	p.fail(k, v, "a string")
	return def
}

func (p *optParser) boolean(k string, def bool) bool {
	v, ok := p.lookup(k)
	if !ok {
		return def
	}
	b, err := asBool(v)
	if err != nil {
		p.fail(k, v, "a bool")
		return def
	}
	return b
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(x) {
		case "1", "t", "true", "yes", "y", "on":
			return true, nil
		case "0", "f", "false", "no", "n", "off", "":
			return false, nil
		}
	case int:
		return x != 0, nil
	case int64:
		return x != 0, nil
	case float64:
		return x != 0, nil
	}
	return false, fmt.Errorf("not a bool: %v", v)
}

func (p *optParser) number(k string) (float64, bool) {
	v, ok := p.lookup(k)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case time.Duration:
		return x.Seconds(), true
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsNaN(f) {
			return f, true
		}
	}
	p.fail(k, v, "a number")
	return 0, false
}

// seconds reads a duration given in seconds (Kombu's unit), or a
// time.Duration.
func (p *optParser) seconds(k string, def time.Duration) time.Duration {
	f, ok := p.number(k)
	if !ok {
		return def
	}
	if math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/1e9 {
		p.fail(k, f, "a number of seconds")
		return def
	}
	return time.Duration(f * float64(time.Second))
}

func (p *optParser) integer(k string, def int) int {
	f, ok := p.number(k)
	if !ok {
		return def
	}
	if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		p.fail(k, f, "an integer")
		return def
	}
	return int(f)
}

// asInts reads a list of integers: a slice, or a string such as
// "0,3,6,9" or "[0, 3, 6, 9]".
func asInts(v any) ([]int, error) {
	switch x := v.(type) {
	case []int:
		return append([]int(nil), x...), nil
	case []any:
		out := make([]int, 0, len(x))
		for _, e := range x {
			switch n := e.(type) {
			case int:
				out = append(out, n)
			case int64:
				out = append(out, int(n))
			case float64:
				if n != math.Trunc(n) {
					return nil, fmt.Errorf("not an integer: %v", n)
				}
				out = append(out, int(n))
			default:
				return nil, fmt.Errorf("not an integer: %v", e)
			}
		}
		return out, nil
	case string:
		s := strings.Trim(strings.TrimSpace(x), "[]()")
		var out []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("not a list: %T", v)
}

// asMap reads a map option: a map, or JSON text from a URL.
func asMap(v any) (map[string]any, error) {
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m, nil
	case string:
		var m map[string]any
		if err := json.Unmarshal([]byte(x), &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf("not a map: %T", v)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
