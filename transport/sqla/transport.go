package sqla

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Transport is Kombu's SQLAlchemy transport over PostgreSQL or MySQL /
// MariaDB. Create it with [New] or [NewWithOptions]; it is safe for
// concurrent use.
type Transport struct {
	o     Options
	state *channel.State
	copts channel.Options

	// mu guards subs: the stores consuming each queue in this process, woken
	// when a publisher of the process stores a message there.
	mu   sync.Mutex
	subs map[string]map[*store]bool
}

var _ transport.Transport = (*Transport)(nil)

// New returns a transport for cfg: cfg.Scheme names the database
// ("sqla+postgresql", "sqlalchemy+mysql+pymysql", ...), the host, port,
// user, password and virtual host (the database name) say where, and
// cfg.Options holds the transport options listed on [Options].
func New(cfg transport.Config) (*Transport, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithOptions(o)
}

// NewWithOptions returns a transport configured by o.
func NewWithOptions(o Options) (*Transport, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{o: o, state: channel.NewState(), subs: make(map[string]map[*store]bool)}
	t.copts = channel.Options{
		State:            t.state,
		DeadLetterQueue:  o.DeadLetterQueue,
		NoRestoreOnClose: o.NoRestoreOnClose,
		Logger:           o.Logger,
	}
	return t, nil
}

// Info describes the transport.
func (t *Transport) Info() transport.Info {
	port := 5432
	if t.o.Dialect == MySQL {
		port = 3306
	}
	return transport.Info{
		Driver:        "sqlalchemy",
		DefaultPort:   port,
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout, transport.Headers},
		Fanout:        "broadcast",
		// Publish returns once the row is committed.
		Confirms: true,
	}
}

// Options returns the transport's options, defaults filled in.
func (t *Transport) Options() Options { return t.o }

func (t *Transport) subscribe(s *store, queues []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for q, set := range t.subs {
		delete(set, s)
		if len(set) == 0 {
			delete(t.subs, q)
		}
	}
	for _, q := range queues {
		set := t.subs[q]
		if set == nil {
			set = make(map[*store]bool)
			t.subs[q] = set
		}
		set[s] = true
	}
}

func (t *Transport) wakeQueue(q string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.subs[q] {
		s.wake()
	}
}

// pgConfig is the pgx configuration of the options.
func (o *Options) pgConfig() (*pgx.ConnConfig, error) {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), Path: "/" + o.Database}
	if o.Password != "" {
		u.User = url.UserPassword(o.User, o.Password)
	} else {
		u.User = url.User(o.User)
	}
	q := url.Values{}
	q.Set("connect_timeout", strconv.Itoa(max(1, int(o.ConnectTimeout/time.Second))))
	q.Set("application_name", "kombu-go")
	u.RawQuery = q.Encode()
	return pgx.ParseConfig(u.String())
}

func (o *Options) openPool() (*sql.DB, error) {
	var pool *sql.DB
	if o.Dialect == PostgreSQL {
		cfg, err := o.pgConfig()
		if err != nil {
			return nil, err
		}
		pool = stdlib.OpenDB(*cfg)
	} else {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = o.User, o.Password
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
		cfg.DBName = o.Database
		cfg.Timeout = o.ConnectTimeout
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		pool = sql.OpenDB(conn)
	}
	pool.SetMaxOpenConns(o.PoolSize + o.MaxOverflow)
	pool.SetMaxIdleConns(o.PoolSize)
	pool.SetConnMaxLifetime(o.PoolRecycle)
	return pool, nil
}

// Dial connects to the database, creates Kombu's tables when they are
// missing (as Kombu's metadata.create_all does) and attaches the
// connection to h.
func (t *Transport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, errors.New("sqla: dial with a nil hub")
	}
	pool, err := t.o.openPool()
	if err != nil {
		return nil, fmt.Errorf("sqla: %w", err)
	}
	info, err := ensureSchema(ctx, pool, &t.o)
	if err != nil {
		pool.Close()
		return nil, connErr("dial", err)
	}
	c := &Conn{t: t, o: &t.o, h: h, db: newDB(pool, &t.o, info), chans: channel.NewSet[*Channel](),
		stores: make(map[*store]bool)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.exec = newExecutor()
	return c, nil
}

// Conn is one connection: a database/sql pool for the requests (publish,
// declarations, get), one executor goroutine for the consumers' claims and
// settlements, and on PostgreSQL one goroutine holding a LISTEN
// connection, started by the first consumer.
type Conn struct {
	t    *Transport
	o    *Options
	h    *hub.Hub
	db   *db
	exec *executor

	chans  *channel.Set[*Channel]
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	smu    sync.Mutex
	stores map[*store]bool

	lastSweep atomic.Int64 // unix nanoseconds of the last visibility sweep

	listenOnce sync.Once
	listening  atomic.Bool // the LISTEN connection is up
	wg         sync.WaitGroup
}

var _ transport.Conn = (*Conn)(nil)

// Channel opens a channel. Safe for concurrent use.
func (c *Conn) Channel(ctx context.Context) (transport.Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqla: channel: %w", err)
	}
	st := newStore(c)
	vc := channel.New(c.h, st, c.t.copts)
	ch := &Channel{Handle: vc.Handle(), ch: vc, st: st}
	st.ch = ch.ch
	if err := c.chans.Add(ch, func() {
		c.smu.Lock()
		c.stores[st] = true
		c.smu.Unlock()
	}); err != nil {
		ch.ch.Close()
		return nil, fmt.Errorf("sqla: %w", err)
	}
	return ch, nil
}

func (c *Conn) removeStore(s *store) {
	c.smu.Lock()
	delete(c.stores, s)
	c.smu.Unlock()
}

func (c *Conn) eachStore(fn func(*store)) {
	c.smu.Lock()
	list := make([]*store, 0, len(c.stores))
	for s := range c.stores {
		list = append(list, s)
	}
	c.smu.Unlock()
	for _, s := range list {
		fn(s)
	}
}

// Done is closed when Close has finished. The connection never gives up
// by itself: the pool redials, claims retry, LISTEN reconnects.
func (c *Conn) Done() <-chan struct{} { return c.chans.Done() }

// Err returns nil while the connection is open and transport.ErrClosed
// after Close.
func (c *Conn) Err() error { return c.chans.Err() }

// Close closes every channel (their unacknowledged messages go back to
// their queues), stops the LISTEN goroutine, lets the executor finish its
// queued work, closes the pool and joins every goroutine the connection
// started. Idempotent. From a hub callback it returns an error matching
// hub.ErrInCallback and closes nothing.
func (c *Conn) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("sqla: close: %w", hub.ErrInCallback)
	}
	chans, first := c.chans.Close()
	if !first {
		return nil
	}
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.ch.Close())
	}
	c.cancel()
	c.wg.Wait()
	c.exec.stop()
	errs = append(errs, c.db.pool.Close())
	c.chans.Finish()
	return errors.Join(errs...)
}

// maybeSweep runs the visibility sweep when it is due: at most every
// quarter of the visibility timeout (between 1s and 1min), piggybacked on
// the claims of the executor, so it needs no timer and no goroutine.
func (c *Conn) maybeSweep(ctx context.Context) {
	every := c.sweepEvery()
	if every == 0 {
		return
	}
	vt := c.o.VisibilityTimeout
	now := time.Now().UnixNano()
	last := c.lastSweep.Load()
	if now-last < int64(every) || !c.lastSweep.CompareAndSwap(last, now) {
		return
	}
	n, err := c.db.sweep(ctx, vt.Seconds())
	if err != nil {
		c.o.Logger.Warn("sqla: visibility sweep failed", "err", err)
		return
	}
	if n > 0 {
		c.o.Logger.Info("sqla: restored messages past the visibility timeout", "count", n)
		c.eachStore((*store).wake)
	}
}

// sweepEvery is the period of the visibility sweep, 0 without one.
func (c *Conn) sweepEvery() time.Duration {
	if c.o.VisibilityTimeout <= 0 || !c.db.info.lease {
		return 0
	}
	return min(max(c.o.VisibilityTimeout/4, time.Second), time.Minute)
}

// Queues lists the queues of the queue table with their ready and
// invisible rows (kombu queues).
func (c *Conn) Queues(ctx context.Context) ([]QueueStat, error) {
	qs, err := c.db.queues(ctx)
	return qs, c.wrap("queues", err)
}

// wrap marks errors of an unreachable database as connection errors.
func (c *Conn) wrap(op string, err error) error {
	if err == nil || errors.Is(err, errNoQueue) {
		return err
	}
	return connErr(op, err)
}

func connErr(op string, err error) error {
	if isConnError(err) {
		return &transport.BrokerError{Kind: transport.KindConnection, Reason: "sqla: " + op, Err: err}
	}
	return fmt.Errorf("sqla: %s: %w", op, err)
}

// isConnError: the database could not be reached or the connection broke
// (as opposed to an error the server reported for a statement).
func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01..03: admin shutdown,
		// crash shutdown, cannot connect now.
		return len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:3] == "57P")
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, driverBadConn) || pgconn.SafeToRetry(err) || isClosedConn(err)
}

// isFKError: a foreign-key violation (the queue row is gone).
func isFKError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23503"
	}
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1452 || myErr.Number == 1216)
}
