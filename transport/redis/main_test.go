package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
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

// redisURL returns KOMBU_TEST_REDIS_URL or skips (fails with
// KOMBU_REQUIRE_BROKERS=1).
func redisURL(t testing.TB) string {
	t.Helper()
	return transporttest.BrokerURL(t, "KOMBU_TEST_REDIS_URL")
}

// configFromURL is a minimal Kombu URL parser for the tests (the real one
// belongs to messaging).
func configFromURL(t testing.TB, raw string, opts map[string]any) transport.Config {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := transport.Config{Scheme: u.Scheme, Hostname: u.Hostname(), VirtualHost: u.Path, Options: map[string]any{}}
	if p := u.Port(); p != "" {
		cfg.Port, _ = strconv.Atoi(p)
	}
	if u.User != nil {
		cfg.UserID = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	for k, v := range u.Query() {
		cfg.Options[k] = v[0]
	}
	for k, v := range opts {
		cfg.Options[k] = v
	}
	return cfg
}

// uniq returns a name unique to this run.
func uniq(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// env is one test's Redis connection: a transport with a unique
// global_keyprefix, a running hub, and a plain go-redis client to look at
// the keys.
type env struct {
	t      testing.TB
	prefix string
	tr     *Transport
	h      *hub.Hub
	conn   *Conn
	rdb    *goredis.Client
	cfg    transport.Config
}

// newEnv dials a transport whose keys all carry a fresh prefix, with a hub
// running on its own goroutine; everything is closed and the keys deleted
// at cleanup.
func newEnv(t testing.TB, opts map[string]any) *env {
	t.Helper()
	return newEnvHub(t, opts, hub.Options{})
}

// newEnvHub is newEnv with a hub of the given options.
func newEnvHub(t testing.TB, opts map[string]any, hopts hub.Options) *env {
	t.Helper()
	return newEnvWith(t, opts, hopts, nil)
}

// newEnvOpts is newEnv with the parsed options changed by tweak before the
// connection is dialled (for the options tests may set only).
func newEnvOpts(t testing.TB, opts map[string]any, tweak func(*options)) *env {
	t.Helper()
	return newEnvWith(t, opts, hub.Options{}, tweak)
}

func newEnvWith(t testing.TB, opts map[string]any, hopts hub.Options, tweak func(*options)) *env {
	t.Helper()
	raw := redisURL(t)
	e := &env{t: t}
	if opts == nil {
		opts = map[string]any{}
	}
	if _, ok := opts["global_keyprefix"]; !ok {
		opts["global_keyprefix"] = uniq("kt") + ":"
	}
	e.prefix = opts["global_keyprefix"].(string)
	e.cfg = configFromURL(t, raw, opts)
	tr, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.tr = tr
	if tweak != nil {
		tweak(e.tr.o)
	}
	e.h = startHubWith(t, hopts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.tr.Dial(ctx, e.h)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c.(*Conn)
	e.rdb = e.tr.o.newClient()
	t.Cleanup(func() {
		if err := e.conn.Close(); err != nil {
			t.Errorf("conn.Close: %v", err)
		}
		e.cleanKeys()
		e.rdb.Close()
	})
	return e
}

func (e *env) cleanKeys() {
	ctx := context.Background()
	var keys []string
	iter := e.rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		e.rdb.Del(ctx, keys...)
	}
}

// startHub runs a hub on a goroutine until the test ends.
func startHub(t testing.TB) *hub.Hub {
	t.Helper()
	return startHubWith(t, hub.Options{})
}

// startHubWith is startHub with options.
func startHubWith(t testing.TB, opts hub.Options) *hub.Hub {
	t.Helper()
	h, err := hub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := h.Run(ctx); err != nil && err != context.Canceled {
			t.Errorf("hub.Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.Close()
	})
	return h
}

func (e *env) channel() *Channel {
	e.t.Helper()
	ch, err := e.conn.Channel(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return ch.(*Channel)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor receives from ch or fails after a generous deadline (a hang
// guard, not a timing assertion).
func waitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func textMsg(s string) *transport.Message {
	return &transport.Message{Body: []byte(s), ContentType: "text/plain", ContentEncoding: "utf-8"}
}

func keysLike(t testing.TB, e *env, pattern string) []string {
	t.Helper()
	keys, err := e.rdb.Keys(context.Background(), e.prefix+pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], e.prefix)
	}
	return keys
}

// testLogger logs to the test's output (go test -v shows it).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// backdate moves every member of the zset index key the given number of
// seconds into the past: the records look as old as a consumer that died
// that long ago would have left them (scores are whole seconds rounded up,
// so waiting out a 1 s visibility timeout takes up to 2 s).
func backdate(t *testing.T, e *env, key string, seconds int64) {
	t.Helper()
	ctx := context.Background()
	tags, err := e.rdb.ZRange(ctx, key, 0, -1).Result()
	if err != nil || len(tags) == 0 {
		t.Fatalf("backdate %s: %v %v", key, tags, err)
	}
	old := float64(time.Now().Unix() - seconds)
	for _, tag := range tags {
		if err := e.rdb.ZAdd(ctx, key, goredis.Z{Score: old, Member: tag}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
