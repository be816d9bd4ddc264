package messaging_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// newFake returns a connection to the fake broker with a fake clock.
func newFake(t *testing.T, url string, b *fakeBroker, mod func(*messaging.Options)) (*messaging.Connection, *fakeClock) {
	t.Helper()
	opts := b.options()
	if mod != nil {
		mod(&opts)
	}
	c, err := messaging.NewConnection(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	messaging.SetClock(c, clk.now, clk.sleep)
	t.Cleanup(func() { c.Close() })
	return c, clk
}

func TestLazyConnect(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://h1", b, nil)
	if len(b.dialed()) != 0 || c.Connected() {
		t.Fatal("NewConnection dialled")
	}
	_ = c.Info()
	_ = c.AsURI(true)
	if len(b.dialed()) != 0 {
		t.Fatal("Info dialled")
	}
	ch, err := c.DefaultChannel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := c.DefaultChannel(context.Background())
	if err != nil || ch2 != ch {
		t.Fatalf("DefaultChannel is not cached: %v", err)
	}
	if got := b.dialed(); !reflect.DeepEqual(got, []string{"h1"}) || !c.Connected() {
		t.Errorf("dials %v", got)
	}
}

func TestUnknownScheme(t *testing.T) {
	_, err := messaging.NewConnection("reddis://localhost", messaging.Options{})
	if !errors.Is(err, messaging.ErrUnknownTransport) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "memory") || !strings.Contains(err.Error(), `did you mean "redis"`) {
		t.Errorf("error does not list the schemes or hint: %v", err)
	}
	_, err = messaging.NewConnection("zookeeper://", messaging.Options{})
	if !errors.Is(err, messaging.ErrUnknownTransport) || !strings.Contains(err.Error(), "no Go port") {
		t.Errorf("zookeeper: %v", err)
	}
	_, err = messaging.NewConnection("memory://", messaging.Options{FailoverStrategy: "random"})
	if err == nil {
		t.Error("unknown failover strategy accepted")
	}
}

func TestInfo(t *testing.T) {
	c, err := messaging.NewConnection("amqp://", linked(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := c.Info()
	want := messaging.ConnectionInfo{Hostname: "localhost", UserID: "guest", Password: "guest", VirtualHost: "/",
		Port: 5672, Transport: "amqp", ConnectTimeout: 5 * time.Second, LoginMethod: "PLAIN", FailoverStrategy: "round-robin"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Info()\n got %+v\nwant %+v", got, want)
	}
	opts := linked(nil)
	opts.TransportOptions = map[string]any{"a": 1}
	opts.FailoverStrategy = "shuffle"
	c2, err := messaging.NewConnection("redis+socket:///tmp/r.sock?x=y;rediss://h:1/3?connect_timeout=2", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got = c2.Info()
	if got.Hostname != "redis+socket:///tmp/r.sock?x=y" || got.URIPrefix != "redis" || got.Transport != "redis" ||
		got.FailoverStrategy != "shuffle" || len(got.Alternates) != 2 || got.TransportOptions["a"] != 1 || got.TransportOptions["x"] != "y" {
		t.Errorf("Info() = %+v", got)
	}
	if opts.TransportOptions["x"] != nil {
		t.Error("Info changed the caller's TransportOptions")
	}
}

func TestTransportConfig(t *testing.T) {
	b := &fakeBroker{}
	opts := linked(b)
	opts.TransportOptions = map[string]any{"visibility_timeout": 10, "keep": true}
	opts.ConnectTimeout = 3 * time.Second
	c, err := messaging.NewConnection("redis://u:p@h:7000/2?visibility_timeout=20&ssl_cert_reqs=none;redis://h2", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := b.configs[0]
	if cfg.Scheme != "redis" || cfg.Hostname != "h" || cfg.Port != 7000 || cfg.UserID != "u" || cfg.Password != "p" ||
		cfg.VirtualHost != "2" || cfg.ConnectTimeout != 3*time.Second {
		t.Errorf("config %+v", cfg)
	}
	if cfg.Options["visibility_timeout"] != "20" || cfg.Options["keep"] != true {
		t.Errorf("options %v: the URL's must win and the rest stay", cfg.Options)
	}
	if cfg.TLS == nil || !cfg.TLS.InsecureSkipVerify {
		t.Errorf("TLS %+v: ssl_cert_reqs=none must turn TLS on without verification", cfg.TLS)
	}
	if !reflect.DeepEqual(cfg.Alternates, []string{"redis://h2"}) {
		t.Errorf("alternates %v", cfg.Alternates)
	}
	if opts.TransportOptions["visibility_timeout"] != 10 {
		t.Error("the caller's TransportOptions changed")
	}
	// rediss verifies by default (unlike Kombu), with the host as SNI.
	b2 := &fakeBroker{}
	c2, err := messaging.NewConnection("rediss://cache.example/0", linked(b2))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tl := b2.configs[0].TLS; tl == nil || tl.InsecureSkipVerify || tl.ServerName != "cache.example" {
		t.Errorf("rediss TLS %+v", tl)
	}
}

// Kombu's connect(): two attempts, 2 s apart, and the raw error.
func TestConnectTwoAttempts(t *testing.T) {
	b := &fakeBroker{dialFail: 100}
	c, clk := newFake(t, "fake://h1", b, nil)
	err := c.Connect(context.Background())
	if !errors.Is(err, errRefused) || errors.Is(err, messaging.ErrOperational) {
		t.Fatalf("err = %v", err)
	}
	if n := len(b.dialed()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	if clk.total() != 2*time.Second {
		t.Errorf("slept %v, want 2s", clk.total())
	}
}

// Kombu's default_channel against a dead broker: 2 s + 4 s of sleeps, then
// OperationalError (the timeout is connect_timeout).
func TestDefaultChannelGivesUp(t *testing.T) {
	b := &fakeBroker{dialFail: 100}
	c, clk := newFake(t, "fake://h1", b, nil)
	_, err := c.DefaultChannel(context.Background())
	var oe *messaging.OperationalError
	if !errors.As(err, &oe) || !errors.Is(err, messaging.ErrOperational) || !transport.IsConnectionError(err) {
		t.Fatalf("err = %v", err)
	}
	if n := len(b.dialed()); n != 3 || oe.Attempts != 3 {
		t.Errorf("%d attempts (%d reported), want 3", n, oe.Attempts)
	}
	if clk.total() != 6*time.Second {
		t.Errorf("slept %v, want 6s", clk.total())
	}
	// The retry keys of the transport options shape it, as in Kombu.
	b2 := &fakeBroker{dialFail: 100}
	c2, clk2 := newFake(t, "fake://h1?max_retries=1&interval_start=0.5", b2, nil)
	if _, err := c2.DefaultChannel(context.Background()); !errors.Is(err, messaging.ErrOperational) {
		t.Fatalf("err = %v", err)
	}
	if n := len(b2.dialed()); n != 2 || clk2.total() != 500*time.Millisecond {
		t.Errorf("%d attempts, slept %v; want 2 and 0.5s", n, clk2.total())
	}
}

func TestFailoverRoundRobin(t *testing.T) {
	b := &fakeBroker{dialFailFor: []string{"h1", "h2"}}
	var errbacks []time.Duration
	c, clk := newFake(t, "fake://h1;fake://h2;fake://h3", b, nil)
	err := c.EnsureConnection(context.Background(), messaging.RetryPolicy{Errback: func(err error, d time.Duration) {
		errbacks = append(errbacks, d)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.dialed(); !reflect.DeepEqual(got, []string{"h1", "h2", "h3"}) {
		t.Errorf("dials %v", got)
	}
	// No sleep until a whole cycle of alternates failed.
	if !reflect.DeepEqual(errbacks, []time.Duration{0, 0}) || clk.total() != 0 {
		t.Errorf("errback intervals %v, slept %v", errbacks, clk.total())
	}
	if got := messaging.CurrentURL(c); got != "fake://h3" {
		t.Errorf("current URL %q", got)
	}
	if c.Info().Hostname != "h3" {
		t.Errorf("Info().Hostname = %q", c.Info().Hostname)
	}

	// All down: the cycle wraps around and sleeps after each full round.
	b2 := &fakeBroker{dialFailFor: []string{"a", "b"}}
	errbacks = nil
	c2, clk2 := newFake(t, "fake://a;fake://b", b2, nil)
	err = c2.EnsureConnection(context.Background(), messaging.RetryPolicy{MaxRetries: 4, Errback: func(err error, d time.Duration) {
		errbacks = append(errbacks, d)
	}})
	if !errors.Is(err, messaging.ErrOperational) {
		t.Fatalf("err = %v", err)
	}
	if got := b2.dialed(); !reflect.DeepEqual(got, []string{"a", "b", "a", "b", "a"}) {
		t.Errorf("dials %v", got)
	}
	if want := secs(0, 2, 0, 4); !reflect.DeepEqual(errbacks, want) {
		t.Errorf("errback intervals %v, want %v", errbacks, want)
	}
	if clk2.total() != 6*time.Second {
		t.Errorf("slept %v", clk2.total())
	}
}

func TestFailoverShuffle(t *testing.T) {
	b := &fakeBroker{dialFail: 40}
	c, _ := newFake(t, "fake://a;fake://b;fake://c", b, func(o *messaging.Options) { o.FailoverStrategy = "shuffle" })
	if err := c.EnsureConnection(context.Background(), messaging.RetryPolicy{}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, h := range b.dialed() {
		seen[h] = true
	}
	if len(seen) != 3 {
		t.Errorf("shuffle visited %v", seen)
	}
	// A custom strategy.
	b2 := &fakeBroker{dialFail: 3}
	always := func(n int) func() int { return func() int { return n - 1 } }
	c2, _ := newFake(t, "fake://a;fake://b;fake://c", b2, func(o *messaging.Options) { o.Failover = always })
	if err := c2.EnsureConnection(context.Background(), messaging.RetryPolicy{}); err != nil {
		t.Fatal(err)
	}
	if got := b2.dialed(); !reflect.DeepEqual(got, []string{"a", "c", "c", "c"}) {
		t.Errorf("custom strategy dials %v", got)
	}
	if c2.Info().FailoverStrategy != "custom" {
		t.Errorf("strategy name %q", c2.Info().FailoverStrategy)
	}
}

// Kombu test case 65: ensure reconnects on a connection error, switches
// host, calls errback, revives, and honours max_retries.
func TestEnsureReconnects(t *testing.T) {
	b := &fakeBroker{publishFail: 2}
	c, _ := newFake(t, "fake://a;fake://b", b, nil)
	p, err := messaging.NewProducer(c, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	var revived []transport.Channel
	err = p.Publish(context.Background(), "hi", messaging.PublishOptions{RoutingKey: "q", Retry: true,
		RetryPolicy: messaging.RetryPolicy{
			Errback:  func(err error, d time.Duration) { errs = append(errs, err) },
			OnRevive: func(ch transport.Channel) { revived = append(revived, ch) },
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.published) != 1 {
		t.Errorf("%d published", len(b.published))
	}
	if got := b.dialed(); !reflect.DeepEqual(got, []string{"a", "b", "a"}) {
		t.Errorf("dials %v: each connection error must switch host", got)
	}
	if len(errs) != 2 || !transport.IsConnectionError(errs[0]) || len(revived) != 2 {
		t.Errorf("errback %v, revived %d", errs, len(revived))
	}

	b2 := &fakeBroker{publishFail: 10}
	c2, _ := newFake(t, "fake://a", b2, nil)
	p2, _ := messaging.NewProducer(c2, messaging.ProducerOptions{})
	err = p2.Publish(context.Background(), "hi", messaging.PublishOptions{Retry: true,
		RetryPolicy: messaging.RetryPolicy{MaxRetries: 2}})
	var oe *messaging.OperationalError
	if !errors.As(err, &oe) || !errors.Is(err, transport.ErrConnectionLost) {
		t.Fatalf("err = %v", err)
	}
	if oe.Attempts != 3 {
		t.Errorf("%d attempts, want 3", oe.Attempts)
	}
	// Without Retry, the connection error comes straight back.
	b3 := &fakeBroker{publishFail: 1}
	c3, _ := newFake(t, "fake://a", b3, nil)
	p3, _ := messaging.NewProducer(c3, messaging.ProducerOptions{})
	if err := p3.Publish(context.Background(), "hi", messaging.PublishOptions{}); !transport.IsConnectionError(err) {
		t.Errorf("err = %v", err)
	}
	if err := p3.Publish(context.Background(), "hi", messaging.PublishOptions{}); err != nil {
		t.Errorf("the next publish reconnects lazily: %v", err)
	}
}

func TestEnsureChannelErrors(t *testing.T) {
	b := &fakeBroker{chanFail: 2}
	c, _ := newFake(t, "fake://a", b, nil)
	n := 0
	err := c.Ensure(context.Background(), messaging.RetryPolicy{}, func(ctx context.Context, ch transport.Channel) error {
		n++
		return ch.Publish(ctx, &transport.Message{}, "", "q", transport.PublishOptions{})
	})
	if err != nil || n != 3 {
		t.Errorf("err = %v after %d calls; recoverable channel errors are retried", err, n)
	}
	if len(b.dialed()) != 1 {
		t.Errorf("a channel error must not reconnect: dials %v", b.dialed())
	}
	// Other errors are returned at once.
	bad := transport.NotFound("queue", "q", "/")
	n = 0
	err = c.Ensure(context.Background(), messaging.RetryPolicy{}, func(context.Context, transport.Channel) error { n++; return bad })
	if !errors.Is(err, transport.ErrNotFound) || n != 1 {
		t.Errorf("err = %v after %d calls", err, n)
	}
	// RetryOn adds errors to retry, bounded by MaxRetries.
	n = 0
	err = c.Ensure(context.Background(), messaging.RetryPolicy{MaxRetries: 2, RetryOn: func(err error) bool { return errors.Is(err, transport.ErrNotFound) }},
		func(context.Context, transport.Channel) error { n++; return bad })
	if !errors.Is(err, transport.ErrNotFound) || n != 3 {
		t.Errorf("RetryOn: err = %v after %d calls, want 3", err, n)
	}
}

func TestDrainEventsTimeout(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := c.DrainEvents(ctx)
	if !errors.Is(err, messaging.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := c.DrainEvents(ctx2); !errors.Is(err, context.Canceled) || errors.Is(err, messaging.ErrTimeout) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestDrainEventsConnectionLost(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	fc := b.lastConn()
	h, _ := c.Hub()
	h.Post(fc.kill)
	err := c.DrainEvents(context.Background())
	if !transport.IsConnectionError(err) {
		t.Errorf("err = %v, want a connection error", err)
	}
	if c.Connected() {
		t.Error("still connected")
	}
}

func TestDrainEventsDelivers(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	var got []any
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "q"}},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) { got = append(got, body) }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	ch, _ := c.DefaultChannel(ctx)
	fch := ch.(*fakeChannel)
	tag := cons.ConsumerTags()["q"]
	fch.deliver(tag, &transport.Message{Body: []byte(`{"a": 1}`), ContentType: "application/json", ContentEncoding: "utf-8"})
	if err := c.DrainEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], map[string]any{"a": int64(1)}) {
		t.Errorf("got %v", got)
	}
}

func TestHubOwnership(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	h, err := c.Hub()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	default:
		t.Error("Close did not close the connection's own hub")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.DefaultChannel(context.Background()); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}

	// The caller's hub is used and left open.
	mine, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	c2, _ := newFake(t, "fake://a", b, nil)
	if err := c2.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := b.lastConn()
	own, _ := c2.Hub()
	if err := c2.RegisterWithEventLoop(mine); err != nil {
		t.Fatal(err)
	}
	if first.Err() == nil {
		t.Error("RegisterWithEventLoop kept the connection on the old hub")
	}
	select {
	case <-own.Done():
	default:
		t.Error("the connection's own hub was not closed")
	}
	if err := c2.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.lastConn().h != mine {
		t.Error("the new connection is not on the caller's hub")
	}
	c2.Close()
	select {
	case <-mine.Done():
		t.Error("Close closed the caller's hub")
	default:
	}
}

// When the caller runs the hub, DrainEvents says so and deliveries flow.
func TestDrainEventsHubRunning(t *testing.T) {
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, func(o *messaging.Options) { o.Hub = h })
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx) }()
	// Wait until the hub runs: only Run can run this post.
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	err = c.DrainEvents(context.Background())
	cancel()
	<-done
	h.Close()
	if !errors.Is(err, hub.ErrRunning) {
		t.Errorf("err = %v, want hub.ErrRunning", err)
	}
}

func TestClone(t *testing.T) {
	b := &fakeBroker{dialFailFor: []string{"a"}}
	c, _ := newFake(t, "fake://a;fake://b;fake://c", b, nil)
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := c.Clone()
	defer n.Close()
	if n.Connected() {
		t.Error("clone is connected")
	}
	if messaging.CurrentURL(n) != "fake://b" || n.AsURI(true) != c.AsURI(true) {
		t.Errorf("clone at %q (%s)", messaging.CurrentURL(n), n.AsURI(true))
	}
	if !reflect.DeepEqual(n.Info(), c.Info()) {
		t.Errorf("clone info %+v", n.Info())
	}
}

// Close from another goroutine ends a DrainEvents that waits without a
// deadline.
func TestCloseEndsDrainEvents(t *testing.T) {
	c := memConn(t)
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "q"}},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) {}}})
	if err := cons.Consume(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- c.DrainEvents(context.Background()) }()
	// Wait until DrainEvents runs the hub.
	h, _ := c.Hub()
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("DrainEvents = %v", err)
	}
}

func TestConsumerOnMessage(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "om"})
	q := messaging.Queue{Name: "om"}
	// A refused content type reaches OnMessage undecoded: decoding is the
	// handler's business.
	if err := p.Publish(ctx, []byte("x"), messaging.PublishOptions{ContentType: "application/x-yaml",
		Declare: []messaging.Declaration{q}}); err != nil {
		t.Fatal(err)
	}
	var got *messaging.Message
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		OnMessage: func(m *messaging.Message) { got = m; m.Ack() }})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DrainEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if got == nil || string(got.Body) != "x" {
		t.Fatalf("OnMessage got %v", got)
	}
	if _, err := got.Decode(); !errors.Is(err, messaging.ErrContentDisallowed) {
		t.Errorf("Decode = %v", err)
	}
}

// Sentinel URLs: the transport sees the current sentinel in Hostname and
// Port and the others in Alternates; unix sockets arrive as the path.
func TestTransportConfigSentinelAndSocket(t *testing.T) {
	b := &fakeBroker{}
	opts := linked(b)
	opts.TransportOptions = map[string]any{"master_name": "mymaster"}
	c, err := messaging.NewConnection("sentinel://:pw@h1:26379;sentinel://h2:26380", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := b.configs[0]
	if cfg.Scheme != "sentinel" || cfg.Hostname != "h1" || cfg.Port != 26379 || cfg.Password != "pw" ||
		!reflect.DeepEqual(cfg.Alternates, []string{"sentinel://h2:26380"}) || cfg.Options["master_name"] != "mymaster" {
		t.Errorf("sentinel config %+v", cfg)
	}
	b2 := &fakeBroker{}
	c2, err := messaging.NewConnection("redis+socket://:pw@/run/redis.sock?virtual_host=2", linked(b2))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg = b2.configs[0]
	if cfg.Scheme != "redis+socket" || cfg.Hostname != "/run/redis.sock" || cfg.Password != "pw" || cfg.VirtualHost != "2" || cfg.TLS != nil {
		t.Errorf("socket config %+v", cfg)
	}
}
