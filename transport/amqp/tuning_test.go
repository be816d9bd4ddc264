package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// brokerTimeouts returns the heartbeat timeout the broker lists for each
// connection named in names (one rabbitmqctl list_connections), or nil
// without KOMBU_TEST_RABBITMQCTL.
func brokerTimeouts(t *testing.T, names []string) map[string]string {
	t.Helper()
	ctl := os.Getenv("KOMBU_TEST_RABBITMQCTL")
	if ctl == "" {
		t.Log("KOMBU_TEST_RABBITMQCTL is not set: the broker's side is not checked")
		return nil
	}
	out, err := exec.Command(ctl, "-q", "list_connections", "client_properties", "timeout").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		for _, name := range names {
			if strings.Contains(line, name) {
				f := strings.Fields(line)
				got[name] = f[len(f)-1]
			}
		}
	}
	return got
}

// TestHeartbeatZeroDisables: heartbeat 0 (Kombu's default) disables
// heartbeats on both sides, where amqp091 alone would take the broker's
// 60 s; a positive value is negotiated as the smaller one.
func TestHeartbeatZeroDisables(t *testing.T) {
	cases := []struct {
		name string
		opts map[string]any
		want time.Duration
	}{
		{"default", nil, 0},
		{"heartbeat=0", map[string]any{"heartbeat": "0"}, 0},
		{"heartbeat=7", map[string]any{"heartbeat": 7}, 7 * time.Second},
	}
	var names []string
	for _, tc := range cases {
		e := dial(t, tc.opts)
		names = append(names, e.name)
		if got := e.conn.(*conn).ac.Config.Heartbeat; got != tc.want {
			t.Errorf("%s: negotiated heartbeat %v, want %v", tc.name, got, tc.want)
		}
	}
	broker := brokerTimeouts(t, names)
	for i, tc := range cases {
		if broker == nil {
			break
		}
		if got, want := broker[names[i]], fmt.Sprint(int(tc.want/time.Second)); got != want {
			t.Errorf("%s: the broker's heartbeat timeout for the connection is %q, want %s", tc.name, got, want)
		}
	}
}

// TestChannelMax: channel_max is negotiated, and a channel beyond it is a
// clear error (ErrChannelMax, naming the limit).
func TestChannelMax(t *testing.T) {
	e := dial(t, map[string]any{"channel_max": 3})
	if got := e.conn.(*conn).ac.Config.ChannelMax; got != 3 {
		t.Fatalf("negotiated channel_max %d, want 3", got)
	}
	for range 3 {
		e.channel()
	}
	_, err := e.conn.Channel(ctxT(t))
	if !errors.Is(err, ErrChannelMax) || !strings.Contains(err.Error(), "all 3 channels") {
		t.Fatalf("channel 4 of 3: err = %v, want ErrChannelMax naming the limit", err)
	}
}

// TestReadTimeout: with read_timeout, a call whose answer never comes (the
// broker hangs: a proxy stops forwarding) fails within the timeout as a
// lost connection; without it, the call is still waiting. An idle
// connection waits for nothing and outlives read_timeout.
func TestReadTimeout(t *testing.T) {
	t.Run("idle connection survives", func(t *testing.T) {
		e, _ := dialProxy(t, map[string]any{"read_timeout": 0.3, "recovery": false})
		ch := e.channel()
		time.Sleep(time.Second) // three read_timeouts of silence, waiting for nothing
		if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: uniq("rt"), AutoDelete: true}); err != nil {
			t.Fatalf("declare after an idle spell: %v", err)
		}
	})
	t.Run("stalled broker", func(t *testing.T) {
		e, p := dialProxy(t, map[string]any{"read_timeout": 0.5, "recovery": false})
		ch := e.channel()
		p.stall.Store(true)
		start := time.Now()
		_, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: uniq("rt"), AutoDelete: true})
		took := time.Since(start)
		if !transport.IsConnectionError(err) {
			t.Fatalf("err = %v after %v, want a connection error", err, took)
		}
		if took > 5*time.Second {
			t.Errorf("the declare failed after %v; read_timeout is 0.5 s", took)
		}
		t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
		select {
		case <-e.conn.Done():
		case <-time.After(5 * time.Second):
			t.Error("the connection did not end (recovery is off)")
		}
	})
	t.Run("without read_timeout the call hangs", func(t *testing.T) {
		e, p := dialProxy(t, map[string]any{"recovery": false, "close_timeout": 0.2})
		ch := e.channel()
		p.stall.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := ch.DeclareQueue(ctx, transport.Queue{Name: uniq("rt"), AutoDelete: true})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the caller's deadline (nothing else bounds the wait)", err)
		}
	})
}

// TestWriteTimeout: with write_timeout, a publish that the broker does not
// read (a proxy stops reading, the socket buffers fill) fails within the
// timeout as a lost connection instead of blocking the executor.
func TestWriteTimeout(t *testing.T) {
	e, p := dialProxy(t, map[string]any{"write_timeout": 0.5, "recovery": false})
	ch := e.channel()
	p.stall.Store(true)
	body := bytes.Repeat([]byte("x"), 32<<20) // more than the loopback socket buffers hold
	start := time.Now()
	err := ch.Publish(ctxT(t), &transport.Message{Body: body}, "", uniq("wt"), transport.PublishOptions{})
	took := time.Since(start)
	if !transport.IsConnectionError(err) {
		t.Fatalf("err = %v after %v, want a connection error", err, took)
	}
	if took > 8*time.Second {
		t.Errorf("the publish failed after %v; write_timeout is 0.5 s", took)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}

// TestExchangeBindRecovered: BindExchange routes from source to
// destination, is recorded, and is declared again after a reconnection
// (here it was removed behind the connection's back before the cut);
// UnbindExchange forgets it.
func TestExchangeBindRecovered(t *testing.T) {
	e, p := dialProxy(t, with(fastRecovery, "confirm_publish", true))
	other := dial(t, nil)
	ch, och := e.channel(), other.channel()
	src, dst := uniq("ex-src"), uniq("ex-dst")
	for _, ex := range []string{src, dst} {
		if err := ch.DeclareExchange(ctxT(t), transport.Exchange{Name: ex, Type: transport.Direct, AutoDelete: false}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { och.DeleteExchange(cleanupCtx(t), ex, false) })
	}
	q := e.queue(ch, transport.Queue{})
	if err := ch.BindQueue(ctxT(t), transport.Binding{Queue: q, Exchange: dst, RoutingKey: "k"}); err != nil {
		t.Fatal(err)
	}
	binder := ch.(transport.ExchangeBinder)
	if err := binder.BindExchange(ctxT(t), dst, src, "k", nil); err != nil {
		t.Fatal(err)
	}
	try := func() (bool, error) {
		if err := ch.Publish(ctxT(t), msg("via"), src, "k", transport.PublishOptions{}); err != nil {
			return false, err
		}
		_, err := ch.Get(ctxT(t), q, true)
		if errors.Is(err, transport.ErrEmpty) {
			return false, nil
		}
		return err == nil, err
	}
	routed := func() bool {
		t.Helper()
		ok, err := try()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !routed() {
		t.Fatal("a message published to the source did not reach the destination's queue")
	}
	if err := och.(transport.ExchangeBinder).UnbindExchange(ctxT(t), dst, src, "k", nil); err != nil {
		t.Fatal(err)
	}
	p.cut()
	var ok bool
	var err error
	for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); {
		// A publish in flight at the cut fails; later ones wait for the
		// recovery.
		if ok, err = try(); err != nil && !transport.IsConnectionError(err) {
			t.Fatal(err)
		}
	}
	if !ok {
		t.Fatalf("the exchange binding was not declared again after the reconnection (last error %v)", err)
	}
	if err := binder.UnbindExchange(ctxT(t), dst, src, "k", nil); err != nil {
		t.Fatal(err)
	}
	if routed() {
		t.Error("after UnbindExchange a message still reached the queue")
	}
	if n := len(e.conn.(*conn).topo.exBindings); n != 0 {
		t.Errorf("%d exchange bindings still recorded after UnbindExchange", n)
	}
}
