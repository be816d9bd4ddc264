package sqla

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// Dialects.
const (
	PostgreSQL = "postgresql"
	MySQL      = "mysql"
)

// Kombu's defaults, and ours where Kombu has none.
const (
	defaultQueueTable   = "kombu_queue"   // Kombu: queue_tablename
	defaultMessageTable = "kombu_message" // Kombu: message_tablename
	defaultPolling      = time.Second     // Kombu: virtual Transport.polling_interval
	defaultListenPoll   = 10 * time.Second
	defaultPoolSize     = 5 // SQLAlchemy's QueuePool pool_size
	defaultMaxOverflow  = 10
	defaultConnTimeout  = 10 * time.Second
	defaultVisibility   = time.Hour // Kombu's Redis and SQS default
)

// Options configure a [Transport]. [New] fills them from a
// transport.Config; [NewWithOptions] takes them as they are, zero fields
// meaning the default named on each.
type Options struct {
	// Dialect is PostgreSQL or MySQL (MySQL and MariaDB). From the URL:
	// sqla+postgresql://, sqla+postgres://, sqla+mysql://, sqla+mariadb://,
	// with an optional SQLAlchemy driver suffix (+psycopg2, +pymysql, ...)
	// that is ignored. Required.
	Dialect string
	// Host and Port of the server. Default: 127.0.0.1 and 5432 or 3306.
	Host string
	Port int
	// User and Password. Default: PostgreSQL "postgres", MySQL "root".
	User     string
	Password string
	// Database is the database name (the URL's path). Default: PostgreSQL
	// the user's name, MySQL none.
	Database string

	// QueueTable is the table of queues, Kombu's queue_tablename. Default
	// "kombu_queue". Table names are limited to lower-case letters, digits and '_'
	// (at most 48 characters), so they can be used in SQL text unquoted.
	QueueTable string
	// MessageTable is the table of messages, Kombu's message_tablename.
	// Default "kombu_message".
	MessageTable string

	// PollingInterval is how long a consumer whose queues were empty waits
	// before it looks again, Kombu's polling_interval. Default 1s, Kombu's.
	// On PostgreSQL with Listen, consumers are woken by notifications and
	// this applies only while the LISTEN connection is down.
	PollingInterval time.Duration
	// NoListen turns off PostgreSQL LISTEN/NOTIFY (option listen=false):
	// consumers then poll every PollingInterval, as Kombu does. Ours;
	// default: listen on PostgreSQL. MySQL always polls.
	NoListen bool
	// ListenPollInterval is the safety poll of a PostgreSQL consumer while
	// its LISTEN connection is up (option listen_polling_interval): a
	// message that raised no notification (its trigger dropped by hand,
	// say) waits at most this long. Ours; default 10s.
	ListenPollInterval time.Duration

	// VisibilityTimeout: a row one of our consumers claimed and has not
	// settled within this time is made visible again (option
	// visibility_timeout, seconds; 0 turns it off). Kombu's SQLAlchemy
	// transport has no such restore: a consumer that dies holding a message
	// leaves its row invisible for ever. Ours marks its own claims in a
	// column it adds to the message table (kombu_go_claimed, NULL in
	// Python's rows), so that only rows claimed by our consumers are
	// restored, never the rows Python Kombu acknowledged (it never deletes
	// them). Default 1h, Kombu's Redis and SQS default; negative: off.
	VisibilityTimeout time.Duration

	// PoolSize and MaxOverflow bound the connections of the database/sql
	// pool to PoolSize+MaxOverflow, as SQLAlchemy's create_engine pool_size
	// and max_overflow do; PoolSize connections are kept idle. Defaults 5
	// and 10, SQLAlchemy's.
	PoolSize    int
	MaxOverflow int
	// PoolRecycle closes connections older than this (SQLAlchemy's
	// pool_recycle). Default: never.
	PoolRecycle time.Duration
	// ConnectTimeout bounds connecting. Default 10s.
	ConnectTimeout time.Duration

	// DeadLetterQueue is Kombu's deadletter_queue (see channel.Options).
	DeadLetterQueue string
	// NoRestoreOnClose is restore_on_close=false (see channel.Options).
	NoRestoreOnClose bool

	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// dialectOf reads the dialect from a URL scheme such as "sqla+postgresql"
// or "sqlalchemy+mysql+pymysql", or a bare "postgresql".
func dialectOf(scheme string) (string, error) {
	parts := strings.Split(strings.ToLower(scheme), "+")
	if len(parts) > 1 && (parts[0] == "sqla" || parts[0] == "sqlalchemy") {
		parts = parts[1:]
	}
	switch parts[0] {
	case "postgresql", "postgres", "pgsql":
		return PostgreSQL, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "sqlite":
		return "", fmt.Errorf("sqla: %q: SQLite is not supported (it has no server for two processes to share here; use PostgreSQL or MySQL)", scheme)
	}
	return "", fmt.Errorf("sqla: %q: unsupported database (want sqla+postgresql:// or sqla+mysql://)", scheme)
}

// ParseConfig reads a transport.Config into Options.
func ParseConfig(cfg transport.Config) (Options, error) {
	var o Options
	d, err := dialectOf(cfg.Scheme)
	if err != nil {
		return o, err
	}
	o.Dialect = d
	o.Host, o.Port = cfg.Hostname, cfg.Port
	o.User, o.Password = cfg.UserID, cfg.Password
	o.Database = strings.TrimPrefix(cfg.VirtualHost, "/")
	o.ConnectTimeout = cfg.ConnectTimeout
	o.Logger = cfg.Logger

	r := optmap.New("sqla", cfg.Options)
	r.String("queue_tablename", &o.QueueTable)
	r.String("message_tablename", &o.MessageTable)
	r.Seconds("polling_interval", &o.PollingInterval)
	listen := true
	r.Bool("listen", &listen)
	o.NoListen = !listen
	r.Seconds("listen_polling_interval", &o.ListenPollInterval)
	if r.Seconds("visibility_timeout", &o.VisibilityTimeout) && o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = -1
	}
	r.Int("pool_size", &o.PoolSize)
	r.Int("max_overflow", &o.MaxOverflow)
	r.Seconds("pool_recycle", &o.PoolRecycle)
	r.Seconds("connect_timeout", &o.ConnectTimeout)
	r.String("deadletter_queue", &o.DeadLetterQueue)
	restore := true
	r.Bool("restore_on_close", &restore)
	o.NoRestoreOnClose = !restore
	// create_engine arguments with no meaning here: accepted, no effect.
	r.Known("echo", "pool_pre_ping", "pool_timeout")
	r.Always("confirm_publish", true, "a publish returns once its row is committed: only true")
	r.ConnectionKeys()
	if err := r.Err(); err != nil {
		return o, err
	}
	return o, nil
}

// withDefaults validates o and fills its zero fields.
func (o Options) withDefaults() (Options, error) {
	switch o.Dialect {
	case PostgreSQL, MySQL:
	case "":
		return o, fmt.Errorf("sqla: Options.Dialect is empty (want %q or %q)", PostgreSQL, MySQL)
	default:
		d, err := dialectOf(o.Dialect)
		if err != nil {
			return o, err
		}
		o.Dialect = d
	}
	if o.Host == "" || o.Host == "localhost" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 5432
		if o.Dialect == MySQL {
			o.Port = 3306
		}
	}
	if o.User == "" {
		o.User = "postgres"
		if o.Dialect == MySQL {
			o.User = "root"
		}
	}
	if o.QueueTable == "" {
		o.QueueTable = defaultQueueTable
	}
	if o.MessageTable == "" {
		o.MessageTable = defaultMessageTable
	}
	for _, t := range []struct{ key, v string }{{"queue_tablename", o.QueueTable}, {"message_tablename", o.MessageTable}} {
		if !tableName.MatchString(t.v) {
			return o, &transport.OptionError{Transport: "sqla", Key: t.key, Value: t.v,
				Reason: "want a table name of lower-case letters, digits and '_', at most 48 characters"}
		}
	}
	if strings.EqualFold(o.QueueTable, o.MessageTable) {
		return o, &transport.OptionError{Transport: "sqla", Key: "message_tablename", Value: o.MessageTable,
			Reason: "must differ from queue_tablename"}
	}
	if o.PollingInterval <= 0 {
		o.PollingInterval = defaultPolling
	}
	if o.ListenPollInterval <= 0 {
		o.ListenPollInterval = defaultListenPoll
	}
	if o.VisibilityTimeout == 0 {
		o.VisibilityTimeout = defaultVisibility
	}
	if o.PoolSize <= 0 {
		o.PoolSize = defaultPoolSize
	}
	if o.MaxOverflow < 0 {
		o.MaxOverflow = 0
	} else if o.MaxOverflow == 0 {
		o.MaxOverflow = defaultMaxOverflow
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaultConnTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
