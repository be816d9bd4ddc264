package amqp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// fastRecovery makes the recovery retry quickly in tests.
var fastRecovery = map[string]any{"interval_start": 0.05, "interval_step": 0.05, "interval_max": 0.2}

func with(base map[string]any, kv ...any) map[string]any {
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// brokerConnections lists the broker-side process ids of the connections
// whose client-provided name is connName (close_connection takes the pid).
func brokerConnections(tb testing.TB, ctl, connName string) []string {
	tb.Helper()
	out, err := exec.Command(ctl, "list_connections", "pid", "client_properties", "--no-table-headers", "-q").CombinedOutput()
	if err != nil {
		tb.Fatalf("rabbitmqctl list_connections: %v\n%s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		name, props, ok := strings.Cut(line, "\t")
		if ok && strings.Contains(props, `{"connection_name","`+connName+`"}`) {
			names = append(names, name)
		}
	}
	return names
}

// killConnection closes the connection named connName from the broker side
// (rabbitmqctl close_connection) and returns the broker-side name it had.
func killConnection(tb testing.TB, connName string) string {
	tb.Helper()
	ctl := rabbitmqctl(tb)
	names := brokerConnections(tb, ctl, connName)
	if len(names) != 1 {
		tb.Fatalf("want one broker connection named %s, found %v", connName, names)
	}
	if out, err := exec.Command(ctl, "close_connection", names[0], "test").CombinedOutput(); err != nil {
		tb.Fatalf("rabbitmqctl close_connection: %v\n%s", err, out)
	}
	return names[0]
}

// TestRecoveryMidStream closes the consuming connection from the broker
// side twice while messages flow: consumption resumes by itself, every
// message arrives (at least once), the message held unacked across the
// break comes back redelivered, and nothing acked is lost.
func TestRecoveryMidStream(t *testing.T) {
	rabbitmqctl(t)
	e := dial(t, fastRecovery)
	pub := dial(t, map[string]any{"confirm_publish": true})
	ch := e.channel()
	pch := pub.channel()
	q := e.queue(ch, transport.Queue{}) // survives the connection
	if err := ch.Qos(ctxT(t), 10); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var mu sync.Mutex
	seen := map[string]int{}
	var heldRedelivered bool
	var heldFirstTag string
	progress := make(chan struct{}, 10*n)
	_, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		mu.Lock()
		body := string(m.Body)
		seen[body]++
		first := seen[body] == 1
		if body == "0" && !first && m.DeliveryInfo.Redelivered {
			heldRedelivered = true
		}
		mu.Unlock()
		if body == "0" && first {
			heldFirstTag = m.DeliveryInfo.DeliveryTag // hold it unacked
		} else {
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}
		progress <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if err := pch.Publish(ctxT(t), msg(strconv.Itoa(i)), "", q, transport.PublishOptions{}); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	waitSeen := func(k int) {
		for range k {
			select {
			case <-progress:
			case <-time.After(wait):
				t.Fatalf("consumption stalled")
			}
		}
	}
	publish(0, 100)
	waitSeen(50)
	first := killConnection(t, e.name)
	publish(100, 200)
	waitSeen(50)
	second := killConnection(t, e.name)
	if first == second {
		t.Fatalf("the recovered connection should be a new one (%s)", first)
	}
	publish(200, n)
	deadline := time.Now().Add(wait)
	for {
		mu.Lock()
		complete := len(seen) == n && heldRedelivered
		mu.Unlock()
		if complete {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("after recovery: %d distinct of %d, held message redelivered=%v", len(seen), n, heldRedelivered)
		}
		select {
		case <-progress:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if heldFirstTag == "" {
		t.Fatal("message 0 never held")
	}
	// The held delivery's tag is from a dead channel: acking it is dropped,
	// not a channel error.
	ch.Ack(heldFirstTag)
	waitDepth(t, pch, q, 0)
	if err := e.conn.Err(); err != nil {
		t.Fatalf("Err after recovery: %v", err)
	}
	select {
	case <-e.conn.Done():
		t.Fatal("Done closed although the recovery succeeded")
	default:
	}
	// The recovered connection publishes too.
	if err := ch.Publish(ctxT(t), msg("late"), "", q, transport.PublishOptions{}); err != nil {
		t.Fatalf("publish on the recovered connection: %v", err)
	}
	deadline = time.Now().Add(wait)
	for {
		mu.Lock()
		late := seen["late"]
		mu.Unlock()
		if late == 1 {
			break
		}
		if late > 1 || time.Now().After(deadline) {
			t.Fatalf("late message seen %d times", late)
		}
		select {
		case <-progress:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRecoveryTopology: a server-named exclusive queue bound to an exchange
// dies with the connection; the recovery declares it again (under a new
// name), binds it and restarts its consumer.
func TestRecoveryTopology(t *testing.T) {
	rabbitmqctl(t)
	e := dial(t, fastRecovery)
	pub := dial(t, nil)
	ch := e.channel()
	ex := uniq("fan")
	if err := ch.DeclareExchange(ctxT(t), transport.Exchange{Name: ex, Type: transport.Fanout}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.channel().DeleteExchange(cleanupCtx(t), ex, false) })
	info, err := ch.DeclareQueue(ctxT(t), transport.Queue{Exclusive: true, AutoDelete: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.BindQueue(ctxT(t), transport.Binding{Queue: info.Name, Exchange: ex}); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: info.Name, NoAck: true}, col.fn); err != nil {
		t.Fatal(err)
	}
	pch := pub.channel()
	mustPublish(t, pch, msg("before"), ex, "")
	if m := col.next(t); string(m.Body) != "before" {
		t.Fatalf("got %q", m.Body)
	}
	killConnection(t, e.name)
	// Until the recovery rebinds the queue, fanout messages go nowhere:
	// publish until one arrives.
	deadline := time.Now().Add(wait)
	for got := false; !got; {
		mustPublish(t, pch, msg("after"), ex, "")
		select {
		case m := <-col.ch:
			if string(m.Body) != "after" {
				t.Fatalf("got %q", m.Body)
			}
			if m.DeliveryInfo.Queue == info.Name {
				t.Errorf("the server-named queue should have a new name after the recovery")
			}
			got = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no delivery after the recovery")
			}
		}
	}
	// Operations on the old name follow the rename.
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: info.Name, Passive: true}); err != nil {
		t.Errorf("passive declare by the old name: %v", err)
	}
}

// proxy forwards TCP to the broker and can cut every connection and refuse
// new ones, to break connections without rabbitmqctl, or stall them (stop
// reading and forwarding, leaving the sockets open), to make a broker that
// hangs.
type proxy struct {
	l       net.Listener
	backend string
	down    atomic.Bool
	stall   atomic.Bool
	quit    chan struct{}
	refused atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newProxy(tb testing.TB, backend string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{l: l, backend: backend, quit: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

func (p *proxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			p.refused.Add(1)
			c.Close()
			continue
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(b, c); b.Close() }()
		go func() { defer p.wg.Done(); p.pipe(c, b); c.Close() }()
	}
}

// pipe copies src to dst; while the proxy is stalled it neither reads nor
// forwards.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	waitStall := func() bool {
		for p.stall.Load() {
			select {
			case <-p.quit:
				return false
			case <-time.After(10 * time.Millisecond):
			}
		}
		return true
	}
	for {
		if !waitStall() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !waitStall() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

func (p *proxy) close() {
	close(p.quit)
	p.l.Close()
	p.cut()
	p.wg.Wait()
}

func dialProxy(t *testing.T, opts map[string]any) (*env, *proxy) {
	cfg := configFromURL(t, brokerURL(t))
	port := cfg.Port
	if port == 0 {
		port = 5672
	}
	p := newProxy(t, net.JoinHostPort(cfg.Hostname, strconv.Itoa(port)))
	e := dial(t, with(opts, "__proxy_port", p.port()))
	return e, p
}

// TestRecoveryWaitsAndResumes: while the broker is unreachable, calls wait
// in the executor's queue; once it is back they run on the new connection.
func TestRecoveryWaitsAndResumes(t *testing.T) {
	e, p := dialProxy(t, with(fastRecovery, "max_retries", "none", "confirm_publish", true))
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	p.down.Store(true)
	t.Cleanup(func() { p.down.Store(false) }) // let the cleanups reach the broker
	p.cut()
	// Once a reconnection was refused, the executor is recovering: a call
	// made now waits behind the recovery (a publish made before the
	// executor noticed the loss would fail as in flight instead).
	for p.refused.Load() < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	published := make(chan error, 1)
	go func() {
		published <- ch.Publish(context.Background(), msg("during"), "", q, transport.PublishOptions{})
	}()
	// Let the recovery fail a few more times against the refusing proxy.
	for p.refused.Load() < 4 {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-published:
		t.Fatalf("publish finished while the broker was unreachable: %v", err)
	default:
	}
	if e.conn.Err() != nil {
		t.Fatalf("Err during recovery: %v", e.conn.Err())
	}
	p.down.Store(false)
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("publish after recovery: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("publish still waiting after the broker came back")
	}
	m := col.next(t)
	if string(m.Body) != "during" {
		t.Fatalf("got %q", m.Body)
	}
	ch.Ack(m.DeliveryInfo.DeliveryTag)
	waitDepth(t, ch, q, 0)
}

// TestRecoveryGivesUp: with the broker unreachable the recovery stops after
// max_retries; Done is closed and Err says why; waiting calls fail.
func TestRecoveryGivesUp(t *testing.T) {
	e, p := dialProxy(t, with(fastRecovery, "max_retries", 2))
	ch := e.channel()
	p.down.Store(true)
	p.cut()
	select {
	case <-e.conn.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed after the recovery gave up")
	}
	err := e.conn.Err()
	if !errors.Is(err, ErrRecoveryFailed) || !transport.IsConnectionError(err) {
		t.Fatalf("Err = %v", err)
	}
	if got := p.refused.Load(); got != 3 {
		t.Errorf("attempts = %d, want 3 (one at once, then max_retries=2)", got)
	}
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: "x", Passive: true}); !errors.Is(err, ErrRecoveryFailed) {
		t.Errorf("call after giving up: %v", err)
	}
	if err := e.conn.Close(); err != nil {
		t.Errorf("Close after failure: %v", err)
	}
}

// TestRecoveryDisabled: recovery=false reports the loss at once.
func TestRecoveryDisabled(t *testing.T) {
	e, p := dialProxy(t, map[string]any{"recovery": false})
	e.channel()
	p.cut()
	select {
	case <-e.conn.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed")
	}
	if err := e.conn.Err(); !transport.IsConnectionError(err) {
		t.Fatalf("Err = %v", err)
	}
}

// TestRecoveryNoCumulativeBackoff: a connection lost again and again, each
// time as soon as it delivered after its recovery, is recovered every time
// without the retry policy's intervals (interval_start is 5 s here): at
// once, or at most recoveryGap after the previous recovery began. Before
// issue 10 each such loss added interval_step to the wait (2, 4, 6 s with
// the defaults). The waits the transport logs are checked too.
func TestRecoveryNoCumulativeBackoff(t *testing.T) {
	var logged bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedBuffer{mu: &logMu, b: &logged}, nil))
	e, p := dialProxy(t, map[string]any{"interval_start": 5, "__logger": logger})
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	col := newCollector()
	col.onHub = func(m *transport.Message) { ch.Ack(m.DeliveryInfo.DeliveryTag) }
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, nil).channel()
	const cuts = 6
	var took []string
	for i := range cuts + 1 {
		start := time.Now()
		if err := pub.Publish(ctxT(t), msg(strconv.Itoa(i)), "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		// After a cut, the message waits in the queue for the recovery
		// (or, sent to the dead consumer, is requeued by the broker).
		for m := col.next(t); string(m.Body) != strconv.Itoa(i); m = col.next(t) {
			if n, _ := strconv.Atoi(string(m.Body)); n > i {
				t.Fatalf("got %q, want %d", m.Body, i)
			}
		}
		d := time.Since(start)
		took = append(took, d.Round(time.Millisecond).String())
		if i > 0 && d >= 5*time.Second {
			t.Errorf("recovery %d took %v: the retry interval was applied", i, d)
		}
		if i < cuts {
			p.cut()
		}
	}
	t.Logf("publish-to-delivery across %d losses: %s", cuts, strings.Join(took, ", "))
	logMu.Lock()
	defer logMu.Unlock()
	out := logged.String()
	if n := strings.Count(out, "connection recovered"); n != cuts {
		t.Errorf("%d recoveries logged, want %d:\n%s", n, cuts, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "reconnect failed") {
			t.Errorf("a reconnection failed: %s", line)
		}
		if _, w, ok := strings.Cut(line, " wait="); ok {
			if d, err := time.ParseDuration(strings.Fields(w)[0]); err != nil || d > recoveryGap {
				t.Errorf("logged wait %q, want at most %v", w, recoveryGap)
			}
		}
	}
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
