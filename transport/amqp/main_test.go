package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

func TestMain(m *testing.M) {
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}

// brokerURL returns KOMBU_TEST_AMQP_URL or skips (fails with
// KOMBU_REQUIRE_BROKERS=1).
func brokerURL(tb testing.TB) string {
	tb.Helper()
	return transporttest.BrokerURL(tb, "KOMBU_TEST_AMQP_URL")
}

// configFromURL parses an amqp:// URL the way Kombu does (path minus its
// first slash is the vhost, percent-decoded).
func configFromURL(tb testing.TB, raw string) transport.Config {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatalf("bad KOMBU_TEST_AMQP_URL %q: %v", raw, err)
	}
	cfg := transport.Config{Scheme: u.Scheme, Hostname: u.Hostname(), Options: map[string]any{}}
	if p := u.Port(); p != "" {
		cfg.Port, _ = strconv.Atoi(p)
	}
	if u.User != nil {
		cfg.UserID = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	path, _ := url.PathUnescape(u.EscapedPath())
	cfg.VirtualHost = strings.TrimPrefix(path, "/")
	for k, v := range u.Query() {
		cfg.Options[k] = v[0]
	}
	return cfg
}

func uniq(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "kombu-go-test." + prefix + "." + hex.EncodeToString(b[:])
}

// runHub starts a hub on its own goroutine; cleanup stops and closes it.
func runHub(tb testing.TB) *hub.Hub {
	tb.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		<-done
		h.Close()
	})
	return h
}

// env is one connected test setup.
type env struct {
	tb   testing.TB
	h    *hub.Hub
	tr   transport.Transport
	conn transport.Conn
	name string // connection_name
}

// dial connects with extra options; cleanup closes the connection (before
// the hub, which cleanups run in reverse order).
func dial(tb testing.TB, opts map[string]any) *env {
	tb.Helper()
	cfg := configFromURL(tb, brokerURL(tb))
	name := uniq("conn")
	cfg.Options["connection_name"] = name
	for k, v := range opts {
		cfg.Options[k] = v
	}
	if port, ok := cfg.Options["__proxy_port"].(int); ok {
		delete(cfg.Options, "__proxy_port")
		cfg.Hostname, cfg.Port = "127.0.0.1", port
	}
	if l, ok := cfg.Options["__logger"].(*slog.Logger); ok {
		delete(cfg.Options, "__logger")
		cfg.Logger = l
	} else if os.Getenv("KOMBU_TEST_AMQP_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tr, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h := runHub(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, h)
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return &env{tb: tb, h: h, tr: tr, conn: c, name: name}
}

func (e *env) channel() transport.Channel {
	e.tb.Helper()
	ch, err := e.conn.Channel(ctxT(e.tb))
	if err != nil {
		e.tb.Fatalf("Channel: %v", err)
	}
	e.tb.Cleanup(func() { ch.Close() })
	return ch
}

// queue declares an auto-delete queue deleted at cleanup.
func (e *env) queue(ch transport.Channel, q transport.Queue) string {
	e.tb.Helper()
	if q.Name == "" {
		q.Name = uniq("q")
	}
	info, err := ch.DeclareQueue(ctxT(e.tb), q)
	if err != nil {
		e.tb.Fatalf("DeclareQueue(%s): %v", q.Name, err)
	}
	e.tb.Cleanup(func() { e.deleteQueue(info.Name) })
	return info.Name
}

// deleteQueue deletes with a fresh connection-independent channel when the
// test's connection is already closed.
func (e *env) deleteQueue(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ch, err := e.conn.Channel(ctx); err == nil {
		_, err = ch.DeleteQueue(ctx, name, false, false)
		ch.Close()
		if err == nil {
			return
		}
	}
	cleanupQueue(e.tb, name)
}

func cleanupQueue(tb testing.TB, name string) {
	cfg := configFromURL(tb, brokerURL(tb))
	cfg.Options["recovery"] = false
	tr, err := New(cfg)
	if err != nil {
		return
	}
	h, err := hub.New(hub.Options{})
	if err != nil {
		return
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, h)
	if err != nil {
		return
	}
	defer c.Close()
	if ch, err := c.Channel(ctx); err == nil {
		ch.DeleteQueue(ctx, name, false, false)
	}
}

// cleanupCtx bounds a cleanup's broker call, so that a test that failed
// with the broker unreachable does not hang in its cleanups.
func cleanupCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// rabbitmqctl returns the path of rabbitmqctl or skips.
func rabbitmqctl(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("KOMBU_TEST_RABBITMQCTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		tb.Skip("rabbitmqctl not found (set KOMBU_TEST_RABBITMQCTL): skipping the broker-side close test")
	}
	return p
}

// python returns the Python 3 with kombu or skips.
func python(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("KOMBU_TEST_PYTHON")
	if p == "" {
		p = "/usr/bin/python3"
	}
	if err := exec.Command(p, "-c", "import kombu").Run(); err != nil {
		transporttest.Require(tb, "%s cannot import kombu (%v): set KOMBU_TEST_PYTHON", p, err)
	}
	return p
}
