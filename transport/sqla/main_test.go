package sqla

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

func TestMain(m *testing.M) {
	if os.Getenv("KOMBU_SQLA_ROLE") == "consumer" {
		// A helper process of TestFaultKilledConsumer (failure_test.go).
		os.Exit(runConsumer())
	}
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}

// backend is one database the tests run against.
type backend struct {
	name string // "postgresql" or "mysql"
	env  string
}

var backends = []backend{
	{PostgreSQL, "KOMBU_TEST_POSTGRES_URL"},
	{MySQL, "KOMBU_TEST_MYSQL_URL"},
}

// eachBackend runs fn as a subtest per database, the databases in
// parallel.
func eachBackend(t *testing.T, fn func(t *testing.T, raw string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			raw := transporttest.BrokerURL(t, b.env)
			t.Parallel()
			fn(t, raw)
		})
	}
}

func uniq(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
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

// tables returns options naming a queue and a message table of this test
// alone, dropped when the test ends.
func tables(t testing.TB, raw string) map[string]any {
	t.Helper()
	qt, mt := uniq("kgq_"), uniq("kgm_")
	t.Cleanup(func() { dropTables(t, raw, qt, mt) })
	return map[string]any{"queue_tablename": qt, "message_tablename": mt}
}

func dropTables(t testing.TB, raw, qt, mt string) {
	o, err := ParseConfig(configFromURL(t, raw, nil))
	if err != nil {
		t.Error(err)
		return
	}
	o, _ = o.withDefaults()
	pool, err := o.openPool()
	if err != nil {
		t.Error(err)
		return
	}
	defer pool.Close()
	ctx := context.Background()
	stmts := []string{"DROP TABLE IF EXISTS " + mt, "DROP TABLE IF EXISTS " + qt}
	if o.Dialect == PostgreSQL {
		stmts = append(stmts, "DROP FUNCTION IF EXISTS "+mt+"_kombu_notify()")
	}
	for _, s := range stmts {
		if _, err := pool.ExecContext(ctx, s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// newTransport returns a transport on the backend with tables of its own
// (extra options added).
func newTransport(t testing.TB, raw string, extra map[string]any) *Transport {
	t.Helper()
	opts := tables(t, raw)
	for k, v := range extra {
		opts[k] = v
	}
	tr, err := New(configFromURL(t, raw, opts))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
