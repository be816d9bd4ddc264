package redis

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// unsupported are Kombu options this transport refuses, with the reason.
var unsupported = map[string]string{
	"socket_keepalive_options": "Python socket constants have no Go form; use socket_keepalive",
	"min_other_sentinels":      "go-redis does not check the number of other sentinels",
	"login_method":             "Redis has no SASL login methods; AUTH uses the URL's user and password",
}

// alwaysConfirmed is why confirm_publish=false is refused.
const alwaysConfirmed = "Publish returns once Redis stored the message, so publishes are always confirmed: only true"

// ParseConfig reads cfg, a URL's parts plus Kombu's transport options,
// into Options (kombu-spec §1.2 and §1.15). It is the one place that reads
// the option map. Values may be typed (from code) or strings (from a URL's
// query); durations are in seconds, as in Kombu.
//
// cfg.Scheme selects the form: "redis" (TCP, the default), "rediss" (TLS),
// "redis+socket" or "socket" (a unix socket whose path is in cfg.Hostname as
// "socket:///path", as Kombu passes it, or in cfg.VirtualHost), and
// "sentinel" (the master named by the master_name option, found through the
// sentinels cfg.Hostname:cfg.Port and every "sentinel://" URL in
// cfg.Alternates), and "redis+cluster" or "cluster" (a Redis Cluster whose
// seed nodes cfg.Hostname lists as "host:port,host:port"; see the package
// documentation, "Redis Cluster"). cfg.VirtualHost selects the database ("", "/" or "/0":
// 0; "/1": 1; anything else is an error); the virtual_host option wins
// over it, as a Kombu URL's query wins over its path.
//
// The options are the Kombu keys named in the documentation of each
// Options field, plus TLS: ssl (a bool or Kombu's dict), ssl_cert_reqs
// (default CERT_NONE with a warning, as in Kombu), ssl_ca_certs,
// ssl_certfile, ssl_keyfile, ssl_check_hostname (default false, as in
// redis-py) and ssl_server_hostname. cfg.TLS, when set, wins over them
// (they are still checked). An unknown or misspelt key is an error, a
// *transport.OptionError that names it and lists the valid ones: Kombu
// ignores such keys, we refuse them on purpose. So are
// socket_keepalive_options, min_other_sentinels (Python-only),
// login_method, and master_name, sentinel_kwargs outside a sentinel URL,
// with the reason. Kombu's connection retry keys (max_retries,
// interval_start, interval_step, interval_max, connect_retries_timeout)
// are checked and accepted: messaging.Connection reads them for its
// connects. confirm_publish=true is accepted (a publish returns
// once Redis stored the message), false refused.
func ParseConfig(cfg transport.Config) (Options, error) {
	o := Options{
		Username:       cfg.UserID,
		Password:       cfg.Password,
		ConnectTimeout: cfg.ConnectTimeout,
		Logger:         cfg.Logger,
	}
	r := optmap.New("redis", cfg.Options)
	scheme := strings.ToLower(cfg.Scheme)
	host := ""
	vhost := cfg.VirtualHost
	switch {
	case scheme == "redis+socket" || scheme == "socket" || strings.HasPrefix(cfg.Hostname, "socket://"):
		o.Network = "unix"
		path, inVHost, err := socketPath(cfg)
		if err != nil {
			return o, err
		}
		o.Addr = path
		if u, err := url.Parse(cfg.Hostname); err == nil && u.Scheme == "socket" && u.User != nil {
			// Kombu: socket://:password@/path
			if pw, ok := u.User.Password(); ok {
				o.Password = pw
			}
			if name := u.User.Username(); name != "" {
				o.Username = name
			}
		}
		if inVHost {
			vhost = ""
		}
	case scheme == "sentinel":
		host = hostOrDefault(cfg.Hostname)
		o.SentinelAddrs = sentinelAddrs(host, cfg)
		if !r.String("master_name", &o.MasterName) || o.MasterName == "" {
			r.Fail("master_name", o.MasterName, "required with sentinel://: the name of the master to ask the sentinels for")
		}
		if kw, ok := r.Map("sentinel_kwargs"); ok {
			k := optmap.New("redis sentinel_kwargs", kw)
			k.String("username", &o.SentinelUsername)
			k.String("password", &o.SentinelPassword)
			if err := k.Err(); err != nil {
				return o, err
			}
		}
	case scheme == "redis+cluster" || scheme == "cluster":
		addrs, err := clusterSeeds(cfg)
		if err != nil {
			return o, err
		}
		o.ClusterAddrs = addrs
		host, _, _ = net.SplitHostPort(addrs[0])
	case strings.HasPrefix(cfg.Hostname, "/"):
		o.Network, o.Addr = "unix", cfg.Hostname
	default:
		port := cfg.Port
		if port == 0 {
			port = defaultPort
		}
		host = hostOrDefault(cfg.Hostname)
		o.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if scheme != "sentinel" {
		r.Refuse(map[string]string{"master_name": "only for sentinel:// URLs", "sentinel_kwargs": "only for sentinel:// URLs"})
	}
	var vh string
	if r.String("virtual_host", &vh) {
		vhost = vh
	}
	db, err := parseDB(vhost)
	if err != nil {
		return o, err
	}
	o.DB = db
	if o.Network != "unix" {
		o.vhost = cfg.VirtualHost
	}

	readKombuKeys(r, &o)
	if err := readTLS(r, cfg, scheme, host, &o); err != nil {
		return o, err
	}
	r.ConnectionKeys()
	r.Refuse(unsupported)
	return o, r.Err()
}

// readKombuKeys reads the channel and connection options of Kombu's Redis
// transport.
func readKombuKeys(r *optmap.Reader, o *Options) {
	r.String("client_name", &o.ClientName)
	r.OneOf("body_encoding", &o.BodyEncoding, envelope.BodyBase64, envelope.BodyUTF8)
	if r.String("sep", &o.Sep) && o.Sep == "" {
		r.Fail("sep", "", "must not be empty")
	}
	ack := true
	r.Bool("ack_emulation", &ack)
	o.NoAckEmulation = !ack
	r.String("unacked_key", &o.UnackedKey)
	r.String("unacked_index_key", &o.UnackedIndexKey)
	r.String("unacked_mutex_key", &o.UnackedMutexKey)
	r.Seconds("unacked_mutex_expire", &o.UnackedMutexExpire)
	r.Seconds("visibility_timeout", &o.VisibilityTimeout)
	r.Int("unacked_restore_limit", &o.UnackedRestoreLimit)
	r.Seconds("unacked_restore_interval", &o.UnackedRestoreInterval) // <= 0: the default, as in Kombu
	r.Int("unacked_restore_throttle", &o.UnackedRestoreThrottle)
	patterns := true
	r.Bool("fanout_patterns", &patterns)
	o.NoFanoutPatterns = !patterns
	r.String("global_keyprefix", &o.GlobalKeyPrefix)
	r.OneOf("queue_order_strategy", &o.QueueOrderStrategy, "round_robin", "sorted", "priority")
	if r.Ints("priority_steps", &o.PrioritySteps) && len(o.PrioritySteps) == 0 {
		r.Fail("priority_steps", "[]", "want a non-empty list of integers")
	}
	// Kombu 5.6: polling_interval, when set, is also the BRPOP timeout.
	r.Seconds("polling_interval", &o.BRPOPTimeout)
	r.Seconds("brpop_timeout", &o.BRPOPTimeout)
	r.Seconds("socket_connect_timeout", &o.ConnectTimeout)
	r.Seconds("socket_timeout", &o.SocketTimeout)
	keep := true
	if r.Bool("socket_keepalive", &keep) && !keep {
		o.KeepAlive = -1
	}
	retry := true
	r.Bool("retry_on_timeout", &retry)
	o.NoRetryOnTimeout = !retry
	r.Int("max_connections", &o.MaxConnections)
	r.Seconds("health_check_interval", &o.HealthCheckInterval)
	// fanout_prefix: True (the default template), False (none), or a
	// template of its own; {db} is the numeric database.
	if v, ok := r.Lookup("fanout_prefix"); ok {
		switch x := v.(type) {
		case bool:
			o.NoFanoutPrefix = !x
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				o.NoFanoutPrefix = !b
			} else {
				o.FanoutPrefix = x
			}
		default:
			r.Fail("fanout_prefix", v, "want a bool or a template string")
		}
	}
	r.Always("confirm_publish", true, alwaysConfirmed)
	r.Int("publish_wait_replicas", &o.PublishWaitReplicas)
	r.Seconds("publish_wait_timeout", &o.PublishWaitTimeout)
	r.String("deadletter_queue", &o.DeadLetterQueue)
	restore := true
	r.Bool("restore_on_close", &restore)
	o.NoRestoreOnClose = !restore
}

// readTLS resolves TLS: cfg.TLS wins; otherwise rediss:// or the ssl
// options build a configuration the way redis-py reads them (the chain is
// verified only with ssl_cert_reqs, the name only with
// ssl_check_hostname).
func readTLS(r *optmap.Reader, cfg transport.Config, scheme, host string, o *Options) error {
	t := r.TLS() // a bad value is reported by r.Err
	if cfg.TLS != nil {
		o.TLS = cfg.TLS.Clone()
		if o.TLS.ServerName == "" {
			o.TLS.ServerName = host
		}
		return nil
	}
	if !t.On && scheme != "rediss" {
		return nil
	}
	if t.CertReqs == "" && o.Logger != nil {
		o.Logger.Warn("redis: TLS without ssl_cert_reqs: the server certificate is not verified (as Kombu does)")
	}
	c, err := t.Config("redis", host, false, false)
	if err != nil {
		return err
	}
	o.TLS = c
	return nil
}

// sentinelAddrs lists the sentinels: host:port from cfg, then every
// sentinel:// URL of cfg.Alternates.
func sentinelAddrs(host string, cfg transport.Config) []string {
	port := cfg.Port
	if port == 0 {
		port = defaultSentinelPort
	}
	addrs := []string{net.JoinHostPort(host, strconv.Itoa(port))}
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
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// clusterSeeds lists the seed nodes of a redis+cluster URL: cfg.Hostname
// holds "host:port,host:port..." (messaging.ParseURL keeps the list there),
// or one host whose port is cfg.Port (default 6379).
func clusterSeeds(cfg transport.Config) ([]string, error) {
	var addrs []string
	for h := range strings.SplitSeq(cfg.Hostname, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			port := cfg.Port
			if port == 0 {
				port = defaultPort
			}
			h = net.JoinHostPort(h, strconv.Itoa(port))
		}
		if !slices.Contains(addrs, h) {
			addrs = append(addrs, h)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("redis: redis+cluster: no node address in %q", cfg.Hostname)
	}
	return addrs, nil
}

// parseOptions resolves cfg: ParseConfig, then Options.resolve.
func parseOptions(cfg transport.Config) (*options, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return o.resolve()
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
