package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Transport is Kombu's Redis transport. Create it with [New]; it is safe
// for concurrent use.
type Transport struct {
	o     *options
	state *channel.State

	// fmu guards fanout: Kombu's class-level _fanout_queues, the queues
	// bound to a fanout exchange in this process, written by BindQueue on
	// any goroutine and read by every connection's hub.
	fmu    sync.Mutex
	fanout map[string]fanoutBinding
}

// fanoutBinding is a queue's binding to a fanout exchange: the exchange and
// the binding key with every "#" turned into the Redis glob "*".
type fanoutBinding struct {
	exchange string
	key      string
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Redis transport for cfg: [ParseConfig] then
// [NewWithOptions]. An unknown or misspelt option in cfg.Options is an
// error (a *transport.OptionError listing the valid ones).
func New(cfg transport.Config) (*Transport, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithOptions(o)
}

// NewWithOptions returns a Redis transport for o (see [Options] for the
// defaults of its zero fields). It does not connect: [Transport.Dial]
// does.
func NewWithOptions(o Options) (*Transport, error) {
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	r.chanOpts.State = channel.NewState()
	return &Transport{o: r, state: r.chanOpts.State, fanout: make(map[string]fanoutBinding)}, nil
}

// Info describes the Redis transport.
func (t *Transport) Info() transport.Info {
	port := defaultPort
	if t.o.masterName != "" {
		port = defaultSentinelPort
	}
	return transport.Info{
		Driver:        "redis",
		DefaultPort:   port,
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout},
		Priorities:    true,
		Fanout:        "pubsub",
	}
}

func (t *Transport) fanoutOf(queue string) (fanoutBinding, bool) {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	b, ok := t.fanout[queue]
	return b, ok
}

func (t *Transport) setFanout(queue string, b fanoutBinding) {
	t.fmu.Lock()
	t.fanout[queue] = b
	t.fmu.Unlock()
}

// Dial connects to Redis and attaches the connection to h. Like Kombu's
// channel creation it sends PING and fails when Redis does not answer.
// The hub sockets (BRPOP, PSUBSCRIBE) are opened later, when a channel
// starts consuming.
func (t *Transport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, errors.New("redis: dial with a nil hub")
	}
	var rdb goredis.UniversalClient
	var topo *clusterTopology
	if t.o.cluster {
		rdb, topo = t.o.newClusterClient(), newClusterTopology(t.o)
	} else {
		rdb = t.o.newClient()
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if topo != nil {
			topo.close()
		}
		return nil, connError("dial", err)
	}
	c := &Conn{
		t:     t,
		o:     t.o,
		h:     h,
		rdb:   rdb,
		topo:  topo,
		chans: channel.NewSet[*Channel](),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.exec = newExecutor(c)
	c.sweep = newSweeper(c)
	c.mp = newMultiPoller(c)
	c.wg.Add(1)
	go func() { // owned by c; joined in Close
		defer c.wg.Done()
		c.exec.run()
	}()
	go c.sweep.run(c.ctx) // owned by c; stopped and joined in Close
	return c, nil
}

// newClient builds the go-redis client of a connection: every
// request/response command goes through it.
func (o *options) newClient() *goredis.Client {
	if o.masterName != "" {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            o.masterName,
			SentinelAddrs:         o.sentinels,
			SentinelUsername:      o.sentinelUsr,
			SentinelPassword:      o.sentinelPwd,
			Username:              o.username,
			Password:              o.password,
			DB:                    o.db,
			ClientName:            o.clientName,
			TLSConfig:             o.tls,
			DialTimeout:           o.connTimeout,
			ReadTimeout:           o.sockTimeout,
			WriteTimeout:          o.sockTimeout,
			PoolSize:              o.maxConns,
			MaxRetries:            o.maxRetries,
			Protocol:              2,
			DisableIdentity:       true,
			ContextTimeoutEnabled: true,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Network:               o.network,
		Addr:                  o.addr,
		Username:              o.username,
		Password:              o.password,
		DB:                    o.db,
		ClientName:            o.clientName,
		TLSConfig:             o.tls,
		DialTimeout:           o.connTimeout,
		ReadTimeout:           o.sockTimeout,
		WriteTimeout:          o.sockTimeout,
		PoolSize:              o.maxConns,
		MaxRetries:            o.maxRetries,
		Protocol:              2,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
	})
}

// Conn is one connection to Redis: a go-redis client for commands, an
// executor goroutine that runs the consumer side's commands off the hub, a
// sweeper goroutine for the visibility-timeout sweep, and the
// MultiChannelPoller that owns the channels' hub sockets.
type Conn struct {
	t     *Transport
	o     *options
	h     *hub.Hub
	rdb   goredis.UniversalClient
	exec  *executor
	sweep *sweeper
	pub   pubPool      // PublishBatch's connections (pubconn.go)
	npub  nodePools    // and those to cluster nodes (cluster_publish.go)
	mp    *multiPoller // hub goroutine only

	// topo is the slot map of a cluster (nil on a single node).
	topo *clusterTopology
	// qmu guards swept: the queues a cluster sweep covers, added on the
	// hub (noteSwept) and read by the sweeper goroutine.
	qmu   sync.Mutex
	swept []string

	chans  *channel.Set[*Channel]
	ctx    context.Context // cancelled when Close starts: dial goroutines give up
	cancel context.CancelFunc
	dialWG sync.WaitGroup // dial goroutines
	wg     sync.WaitGroup // the executor and the TLS bridges
}

var _ transport.Conn = (*Conn)(nil)

// Channel opens a channel. Safe for concurrent use.
func (c *Conn) Channel(ctx context.Context) (transport.Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redis: channel: %w", err)
	}
	st := newStore(c)
	var cs channel.Store = st
	if c.o.cluster {
		cs = newClusterStore(st)
	}
	vc := channel.New(c.h, cs, c.o.chanOpts)
	ch := &Channel{Handle: vc.Handle(), vc: vc, st: st}
	st.ch = ch.vc
	// Registered with the poller on the hub, before any request the caller
	// makes next (posts run in order) and before a concurrent Close's
	// poller shutdown (the post is made under the set's lock).
	if err := c.chans.Add(ch, func() { c.h.Post(func() { c.mp.add(st) }) }); err != nil {
		ch.vc.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return ch, nil
}

// Done is closed when Close has finished. The connection never gives up by
// itself: the hub sockets reconnect with backoff, and go-redis redials.
func (c *Conn) Done() <-chan struct{} { return c.chans.Done() }

// Err returns nil while the connection is open and transport.ErrClosed
// after Close.
func (c *Conn) Err() error { return c.chans.Err() }

// Close closes every channel (their unacknowledged messages go back to
// their queues), cancels a visibility sweep in progress and waits for it
// to end, finishes the executor's queued work (acknowledgements,
// restores), closes the go-redis client and joins every goroutine the
// connection started. Idempotent. From a hub callback (hub.InCallback) it
// returns an error matching hub.ErrInCallback and closes nothing: it waits
// for the hub.
func (c *Conn) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("redis: close: %w", hub.ErrInCallback)
	}
	chans, first := c.chans.Close()
	if !first {
		return nil
	}
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.vc.Close())
	}
	c.cancel()
	// The poller's sockets and timers live on the hub.
	stop := func() { c.mp.close() }
	if err := c.h.Call(context.Background(), stop); err != nil {
		<-c.h.Done()
		stop()
	}
	c.dialWG.Wait()
	c.mp.releaseDials() // closing their descriptors ends their TLS bridges
	c.sweep.stop()      // c.ctx is cancelled: a sweep in progress ends
	c.exec.stop()
	c.wg.Wait()
	c.closePub()
	c.npub.close()
	errs = append(errs, c.rdb.Close())
	if c.topo != nil {
		c.topo.close()
	}
	c.chans.Finish()
	return errors.Join(errs...)
}

// connError wraps a failure to reach Redis as a connection error.
func connError(op string, err error) error {
	if err == nil {
		return nil
	}
	var be *transport.BrokerError
	if errors.As(err, &be) {
		return err
	}
	if isConnErr(err) {
		return &transport.BrokerError{Kind: transport.KindConnection, Reason: "redis: " + op, Err: err}
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}
