package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// fakeClock is a clock whose sleeps return at once and advance the time.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	f.sleeps = append(f.sleeps, d)
	return nil
}

func (f *fakeClock) total() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s time.Duration
	for _, d := range f.sleeps {
		s += d
	}
	return s
}

// fakeBroker is a scripted broker behind the "fake" scheme: it fails dials
// and publishes on demand and records what it was asked.
type fakeBroker struct {
	mu          sync.Mutex
	dialFail    int      // the next dials that fail
	dialFailFor []string // hosts whose dials always fail
	dials       []string // hosts dialled, in order
	publishFail int      // the next publishes that break the connection
	chanFail    int      // the next publishes that fail with a recoverable channel error
	published   []*transport.Message
	confirms    []bool // PublishOptions.Confirm of each published message
	declared    []string
	conns       []*fakeConn
	configs     []transport.Config
}

func (b *fakeBroker) scheme() messaging.Scheme {
	return messaging.Scheme{New: b.newTransport, DefaultHostname: "localhost", DefaultPort: 1234}
}

func (b *fakeBroker) options() messaging.Options {
	return messaging.Options{Schemes: map[string]messaging.Scheme{"fake": b.scheme()}}
}

func (b *fakeBroker) newTransport(cfg transport.Config) (transport.Transport, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.configs = append(b.configs, cfg)
	return &fakeTransport{b: b, cfg: cfg}, nil
}

func (b *fakeBroker) dialed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dials...)
}

func (b *fakeBroker) lastConn() *fakeConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) == 0 {
		return nil
	}
	return b.conns[len(b.conns)-1]
}

type fakeTransport struct {
	b   *fakeBroker
	cfg transport.Config
}

func (t *fakeTransport) Info() transport.Info {
	return transport.Info{Driver: "fake", DefaultPort: 1234, ExchangeTypes: []string{transport.Direct, transport.Fanout}}
}

var errRefused = &transport.BrokerError{Kind: transport.KindConnection, Reason: "connection refused"}

func (t *fakeTransport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, errors.New("fake: nil hub")
	}
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dials = append(b.dials, t.cfg.Hostname)
	for _, host := range b.dialFailFor {
		if host == t.cfg.Hostname {
			return nil, errRefused
		}
	}
	if b.dialFail > 0 {
		b.dialFail--
		return nil, errRefused
	}
	c := &fakeConn{b: b, h: h, done: make(chan struct{})}
	b.conns = append(b.conns, c)
	return c, nil
}

type fakeConn struct {
	b    *fakeBroker
	h    *hub.Hub
	mu   sync.Mutex
	done chan struct{}
	err  error
	n    int
}

func (c *fakeConn) Channel(ctx context.Context) (transport.Channel, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	c.n++
	return &fakeChannel{conn: c, consumers: map[string]transport.DeliverFunc{}}, nil
}

func (c *fakeConn) Done() <-chan struct{} { return c.done }

func (c *fakeConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// kill breaks the connection as a lost socket would.
func (c *fakeConn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("fake: %w", transport.ErrConnectionLost)
		close(c.done)
	}
	c.h.Wake()
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = transport.ErrClosed
		close(c.done)
	}
	return nil
}

type fakeChannel struct {
	conn      *fakeConn
	mu        sync.Mutex
	closed    bool
	consumers map[string]transport.DeliverFunc
	acks      []string
	rejects   []string
	qos       int
	tagN      int
}

func (ch *fakeChannel) check() error {
	if err := ch.conn.Err(); err != nil {
		return err
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return transport.ErrClosed
	}
	return nil
}

func (ch *fakeChannel) record(s string) error {
	if err := ch.check(); err != nil {
		return err
	}
	b := ch.conn.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.declared = append(b.declared, s)
	return nil
}

func (ch *fakeChannel) DeclareExchange(ctx context.Context, ex transport.Exchange) error {
	return ch.record("exchange " + ex.Name)
}
func (ch *fakeChannel) DeleteExchange(ctx context.Context, name string, ifUnused bool) error {
	return ch.record("delete exchange " + name)
}
func (ch *fakeChannel) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	if q.Name == "" {
		q.Name = "amq.gen-1"
	}
	return transport.QueueInfo{Name: q.Name}, ch.record("queue " + q.Name)
}
func (ch *fakeChannel) BindQueue(ctx context.Context, b transport.Binding) error {
	return ch.record("bind " + b.Queue + " " + b.Exchange + " " + b.RoutingKey)
}
func (ch *fakeChannel) UnbindQueue(ctx context.Context, b transport.Binding) error {
	return ch.record("unbind " + b.Queue)
}
func (ch *fakeChannel) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	return 0, ch.record("delete queue " + name)
}
func (ch *fakeChannel) PurgeQueue(ctx context.Context, name string) (int, error) {
	return 3, ch.record("purge " + name)
}

func (ch *fakeChannel) Publish(ctx context.Context, m *transport.Message, exchange, routingKey string, opts transport.PublishOptions) error {
	if err := ch.check(); err != nil {
		return err
	}
	b := ch.conn.b
	b.mu.Lock()
	if b.publishFail > 0 {
		b.publishFail--
		b.mu.Unlock()
		ch.conn.kill()
		return fmt.Errorf("fake: publish: %w", transport.ErrConnectionLost)
	}
	if b.chanFail > 0 {
		b.chanFail--
		b.mu.Unlock()
		return &transport.BrokerError{Kind: transport.KindChannel, Code: 405, Reason: "RESOURCE_LOCKED"}
	}
	cp := *m
	cp.DeliveryInfo.Exchange, cp.DeliveryInfo.RoutingKey = exchange, routingKey
	b.published = append(b.published, &cp)
	b.confirms = append(b.confirms, opts.Confirm)
	b.mu.Unlock()
	return nil
}

func (ch *fakeChannel) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	if err := ch.check(); err != nil {
		return nil, err
	}
	return nil, transport.ErrEmpty
}

func (ch *fakeChannel) Consume(ctx context.Context, opts transport.ConsumeOptions, fn transport.DeliverFunc) (string, error) {
	if err := ch.check(); err != nil {
		return "", err
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	tag := opts.ConsumerTag
	if tag == "" {
		ch.tagN++
		tag = "ctag" + strconv.Itoa(ch.tagN)
	}
	ch.consumers[tag] = fn
	return tag, nil
}

func (ch *fakeChannel) Cancel(ctx context.Context, tag string) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	delete(ch.consumers, tag)
	return nil
}

// deliver hands m to the consumer tag on the hub goroutine.
func (ch *fakeChannel) deliver(tag string, m *transport.Message) {
	ch.conn.h.Post(func() {
		ch.mu.Lock()
		fn := ch.consumers[tag]
		ch.mu.Unlock()
		if fn != nil {
			fn(m)
		}
	})
}

func (ch *fakeChannel) Ack(tag string) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.acks = append(ch.acks, tag)
	return nil
}

func (ch *fakeChannel) Reject(tag string, requeue bool) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.rejects = append(ch.rejects, tag+":"+strconv.FormatBool(requeue))
	return nil
}

func (ch *fakeChannel) Qos(ctx context.Context, n int) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.qos = n
	return nil
}

func (ch *fakeChannel) Recover(ctx context.Context) error { return ch.check() }

func (ch *fakeChannel) Close() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.closed = true
	return nil
}

var _ transport.Channel = (*fakeChannel)(nil)

// linked returns Options in which the built-in network schemes (whose
// transports may not be linked into this build yet) are served by a fake
// broker, with their built-in defaults.
func linked(b *fakeBroker) messaging.Options {
	if b == nil {
		b = &fakeBroker{}
	}
	s := messaging.Scheme{New: b.newTransport}
	return messaging.Options{Schemes: map[string]messaging.Scheme{
		"amqp": s, "amqps": s, "redis": s, "rediss": s, "sentinel": s, "fake": b.scheme()}}
}
