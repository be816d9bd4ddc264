package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/channel/envelope"
)

// Kombu's defaults (kombu-spec §1.15).
const (
	defaultPort          = 6379
	defaultSentinelPort  = 26379
	defaultAddr          = "127.0.0.1:6379"
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

// Options configure a Redis [Transport]. The zero value connects to
// 127.0.0.1:6379, database 0, with Kombu's defaults; every field documents
// its Kombu transport option (or URL part) and its default. [ParseConfig]
// fills an Options from a URL's parts and Kombu's option map; code that
// needs no map sets the fields and calls [NewWithOptions].
//
// Booleans whose Kombu default is true are negated here (NoAckEmulation
// for ack_emulation=False, ...), so that the zero value keeps Kombu's
// behaviour.
type Options struct {
	// Network is "tcp" or "unix" (redis+socket://). Default: "tcp".
	Network string
	// Addr is host:port, or the socket path when Network is "unix".
	// Default: "127.0.0.1:6379".
	Addr string
	// Username and Password authenticate (the URL's user and password;
	// Redis 6 ACL user when Username is set). Default: none.
	Username string
	Password string
	// DB is the database number (the URL's path "/1", or the virtual_host
	// option). Default: 0.
	DB int
	// TLS, when non-nil, turns TLS on (rediss://, ssl=true, ssl_* options;
	// see ParseConfig). It is cloned; an empty ServerName is set to the
	// host of Addr. Default: nil, no TLS.
	TLS *tls.Config

	// SentinelAddrs, when non-empty, reach Redis through Sentinel
	// (sentinel://): the master named MasterName is looked up at these
	// host:port addresses. Default: none.
	SentinelAddrs []string
	// MasterName is the master_name option: required with SentinelAddrs.
	MasterName string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (the username and password of the sentinel_kwargs option).
	SentinelUsername string
	SentinelPassword string

	// ClusterAddrs, when non-empty, reach a Redis Cluster
	// (redis+cluster://host:port[,host:port...]): these seed nodes are
	// asked for the cluster's slot map. Each queue's keys then share one
	// hash tag (cluster.go), a layout of this package's own: Python Kombu
	// cannot use a cluster. DB must be 0. Default: none.
	ClusterAddrs []string

	// PublishWaitReplicas, when above 0, makes every Publish wait until
	// that many replicas acknowledged the message (Redis's WAIT, on the
	// connection that stored it; PublishBatch sends one WAIT at the end of
	// each node's pipeline), so that a failover that promotes one of
	// them keeps it; fewer acknowledgements within PublishWaitTimeout are
	// an error (the message may still be stored: publish again and accept
	// a duplicate). Option publish_wait_replicas, ours (Kombu has none).
	// Default: 0, Publish returns once the master stored the message.
	PublishWaitReplicas int
	// PublishWaitTimeout bounds that wait (publish_wait_timeout, in
	// seconds). Default: 1 s.
	PublishWaitTimeout time.Duration

	// ClientName is sent as CLIENT SETNAME (client_name). Default: none.
	ClientName string
	// ConnectTimeout bounds each connection attempt and reply waits that
	// follow it (socket_connect_timeout; Config.ConnectTimeout). Kombu:
	// None (no limit). Default: 5 s.
	ConnectTimeout time.Duration
	// SocketTimeout bounds reads and writes of commands (socket_timeout).
	// Kombu: None (no limit). Default: 0, go-redis's 3 s.
	SocketTimeout time.Duration
	// KeepAlive is the TCP keep-alive period (socket_keepalive: true keeps
	// the default, false sets -1). A negative value turns keep-alive off.
	// Kombu: None (redis-py: off). Default: 0, Go's 15 s.
	KeepAlive time.Duration
	// NoRetryOnTimeout makes a command that timed out or lost its
	// connection fail at once (retry_on_timeout=False). Default: false,
	// go-redis retries it up to 3 times with backoff, a deliberate
	// difference from redis-py, whose default is no retry: a busy Redis
	// then costs latency, not errors.
	NoRetryOnTimeout bool
	// MaxConnections bounds the go-redis pool of each connection
	// (max_connections). Default: 10, as in Kombu.
	MaxConnections int
	// HealthCheckInterval is the period of the PING on the PUB/SUB sockets
	// (health_check_interval). Default: 25 s, as in Kombu.
	HealthCheckInterval time.Duration

	// BodyEncoding is how bodies are stored: "base64" or "utf-8"
	// (body_encoding). Default: "base64", as in Kombu.
	BodyEncoding string
	// Sep separates the fields of a binding (sep). Default: "\x06\x16",
	// as in Kombu.
	Sep string
	// NoAckEmulation turns off the unacked hash and the visibility timeout
	// (ack_emulation=False): a delivered message is gone. Default: false,
	// acks are emulated, as in Kombu.
	NoAckEmulation bool
	// UnackedKey, UnackedIndexKey and UnackedMutexKey name the keys of
	// ack emulation (unacked_key, unacked_index_key, unacked_mutex_key).
	// Default: "unacked", "unacked_index", "unacked_mutex", as in Kombu.
	UnackedKey      string
	UnackedIndexKey string
	UnackedMutexKey string
	// UnackedMutexExpire is the lifetime of the restore mutex
	// (unacked_mutex_expire). Default: 300 s, as in Kombu.
	UnackedMutexExpire time.Duration
	// VisibilityTimeout is how long a delivered, unacknowledged message
	// waits before the sweep gives it back to its queue
	// (visibility_timeout). Default: 3600 s, as in Kombu.
	VisibilityTimeout time.Duration
	// UnackedRestoreLimit bounds the messages one sweep looks at
	// (unacked_restore_limit). Default: 0, no limit, as in Kombu.
	UnackedRestoreLimit int
	// UnackedRestoreInterval is the period of the visibility sweep
	// (unacked_restore_interval). Default: 10 s (Kombu's hard-coded period
	// of restore_visible).
	UnackedRestoreInterval time.Duration
	// UnackedRestoreThrottle runs the sweep on every Nth poll cycle
	// (unacked_restore_throttle). Default: 10.
	UnackedRestoreThrottle int
	// FanoutPrefix is the template of the PUB/SUB channel prefix of fanout
	// exchanges, "{db}" standing for the database (fanout_prefix as a
	// string). Default: "/{db}.", Kombu's fanout_prefix=True.
	FanoutPrefix string
	// NoFanoutPrefix uses no prefix at all (fanout_prefix=False).
	NoFanoutPrefix bool
	// NoFanoutPatterns publishes fanout messages to the exchange's channel
	// without the routing key (fanout_patterns=False). Default: false, as
	// in Kombu.
	NoFanoutPatterns bool
	// GlobalKeyPrefix prefixes every key and channel (global_keyprefix).
	// Default: "".
	GlobalKeyPrefix string
	// QueueOrderStrategy orders the queues of one consumer:
	// "round_robin", "sorted" or "priority" (queue_order_strategy).
	// Default: "round_robin", as in Kombu.
	QueueOrderStrategy string
	// PrioritySteps are the priority buckets of each queue
	// (priority_steps). Default: 0, 3, 6, 9, as in Kombu.
	PrioritySteps []int
	// BRPOPTimeout is the server-side timeout of each blocking pop
	// (brpop_timeout; polling_interval too, as in Kombu 5.6). Default: 1 s.
	BRPOPTimeout time.Duration
	// DeadLetterQueue receives messages no binding routes
	// (deadletter_queue). Default: none, they are dropped (or returned).
	DeadLetterQueue string
	// NoRestoreOnClose leaves a closing channel's unacknowledged messages
	// to the visibility timeout (restore_on_close=False). Default: false,
	// Close gives them back at once.
	NoRestoreOnClose bool

	// Logger receives diagnostics (Config.Logger). Default: discard.
	Logger *slog.Logger

	// vhost names the virtual host in error texts (from the URL).
	vhost string
	// noTracking keeps the consume socket in RESP2 without CLIENT
	// TRACKING, as against a server that refuses them (tests only).
	noTracking bool
}

// options is Options resolved into everything the transport needs. It is
// immutable once built.
type options struct {
	// Where and how to connect.
	network     string // "tcp" or "unix"
	addr        string // host:port, or the socket path
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
	maxRetries  int // go-redis MaxRetries: 0 its default (3), -1 none
	healthCheck time.Duration
	noTracking  bool
	// cluster: a Redis Cluster reached through seeds (ClusterAddrs).
	cluster bool
	seeds   []string
	// waitReplicas and waitTimeout: PublishWaitReplicas and
	// PublishWaitTimeout.
	waitReplicas int
	waitTimeout  time.Duration
	// queue is the queue whose record keys this copy names (forQueue, in
	// cluster mode); "" for the connection's options. qcache holds those
	// copies, shared by every copy of one options.
	queue  string
	root   *options
	qcache *sync.Map

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
}

// resolve checks o and fills its defaults.
func (o Options) resolve() (*options, error) {
	r := &options{
		network:         o.Network,
		addr:            o.Addr,
		sentinels:       slices.Clone(o.SentinelAddrs),
		masterName:      o.MasterName,
		sentinelUsr:     o.SentinelUsername,
		sentinelPwd:     o.SentinelPassword,
		username:        o.Username,
		password:        o.Password,
		db:              o.DB,
		clientName:      o.ClientName,
		connTimeout:     orDefault(o.ConnectTimeout, defaultConnectTimout),
		sockTimeout:     max(o.SocketTimeout, 0),
		keepAlive:       o.KeepAlive,
		maxConns:        orDefault(o.MaxConnections, defaultMaxConns),
		healthCheck:     orDefault(o.HealthCheckInterval, defaultHealthCheck),
		noTracking:      o.noTracking,
		cluster:         len(o.ClusterAddrs) > 0,
		seeds:           slices.Clone(o.ClusterAddrs),
		waitReplicas:    max(o.PublishWaitReplicas, 0),
		waitTimeout:     orDefault(o.PublishWaitTimeout, time.Second),
		qcache:          new(sync.Map),
		bodyEncoding:    orDefault(o.BodyEncoding, envelope.BodyBase64),
		sep:             orDefault(o.Sep, defaultSep),
		ackEmulation:    !o.NoAckEmulation,
		unackedKey:      orDefault(o.UnackedKey, "unacked"),
		unackedIndexKey: orDefault(o.UnackedIndexKey, "unacked_index"),
		unackedMutexKey: orDefault(o.UnackedMutexKey, "unacked_mutex"),
		mutexExpire:     orDefault(o.UnackedMutexExpire, defaultMutexExpire),
		visibility:      orDefault(o.VisibilityTimeout, defaultVisibility),
		restoreLimit:    max(o.UnackedRestoreLimit, 0),
		restoreInterval: orDefault(o.UnackedRestoreInterval, defaultRestoreEvery),
		restoreThrottle: orDefault(o.UnackedRestoreThrottle, defaultThrottle),
		fanoutPatterns:  !o.NoFanoutPatterns,
		prefix:          o.GlobalKeyPrefix,
		queueOrder:      orDefault(o.QueueOrderStrategy, channel.RoundRobin),
		steps:           slices.Clone(o.PrioritySteps),
		brpopTimeout:    orDefault(o.BRPOPTimeout, defaultBRPOPTimeout),
		log:             o.Logger,
	}
	if o.NoRetryOnTimeout {
		r.maxRetries = -1
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if len(r.steps) == 0 {
		r.steps = []int{0, 3, 6, 9}
	}
	switch r.network {
	case "":
		r.network = "tcp"
	case "tcp", "unix":
	default:
		return nil, fmt.Errorf("redis: Options.Network %q: want tcp or unix", o.Network)
	}
	if r.cluster {
		switch {
		case len(r.sentinels) > 0:
			return nil, errors.New("redis: Options.ClusterAddrs and SentinelAddrs exclude each other")
		case r.network != "tcp":
			return nil, errors.New("redis: a cluster is reached over tcp")
		case r.db != 0:
			return nil, fmt.Errorf("redis: a cluster has only database 0, not %d", r.db)
		}
		r.addr = r.seeds[0]
	}
	if r.addr == "" && len(r.sentinels) == 0 {
		if r.network == "unix" {
			return nil, errors.New("redis: Options.Addr: a unix socket needs a path")
		}
		r.addr = defaultAddr
	}
	if len(r.sentinels) > 0 && r.masterName == "" {
		return nil, errors.New("redis: sentinel: the master_name transport option (Options.MasterName) is required")
	}
	if r.db < 0 {
		return nil, fmt.Errorf("redis: Options.DB %d: want 0 or more", r.db)
	}
	if !strings.EqualFold(r.bodyEncoding, envelope.BodyBase64) && !strings.EqualFold(r.bodyEncoding, envelope.BodyUTF8) {
		return nil, fmt.Errorf("redis: body_encoding %q: only base64 and utf-8 exist", r.bodyEncoding)
	}
	if _, err := channel.NewCycle(r.queueOrder); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	tmpl := orDefault(o.FanoutPrefix, defaultFanoutPrefix)
	if o.NoFanoutPrefix {
		tmpl = ""
	}
	r.fanoutPrefix = strings.ReplaceAll(tmpl, "{db}", strconv.Itoa(r.db))
	if o.TLS != nil {
		r.tls = o.TLS.Clone()
		if r.tls.ServerName == "" && r.network == "tcp" && len(r.sentinels) == 0 {
			r.tls.ServerName, _, _ = net.SplitHostPort(r.addr)
		}
	}
	vhost := o.vhost
	if vhost == "" {
		vhost = "/"
		if r.db != 0 {
			vhost = "/" + strconv.Itoa(r.db)
		}
	}
	r.chanOpts = channel.Options{
		DeadLetterQueue:  o.DeadLetterQueue,
		NoRestoreOnClose: o.NoRestoreOnClose,
		VHost:            vhost,
		Logger:           r.log,
	}
	return r, nil
}

// orDefault returns v, or def when v is the zero value (or negative).
func orDefault[T int | time.Duration | string](v, def T) T {
	var zero T
	if v <= zero {
		return def
	}
	return v
}
