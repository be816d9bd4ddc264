package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// sqlaTables returns the broker URL with tables of the test's own, and
// drops them when the test ends.
func sqlaTables(t *testing.T, base string) string {
	t.Helper()
	b := make([]byte, 5)
	rand.Read(b)
	qt, mt := "kcliq_"+hex.EncodeToString(b), "kclim_"+hex.EncodeToString(b)
	t.Cleanup(func() {
		u, err := url.Parse(base)
		if err != nil {
			t.Error(err)
			return
		}
		var db *sql.DB
		stmts := []string{"DROP TABLE IF EXISTS " + mt, "DROP TABLE IF EXISTS " + qt}
		if strings.Contains(u.Scheme, "postgres") {
			u.Scheme = "postgres"
			cfg, err := pgx.ParseConfig(u.String())
			if err != nil {
				t.Error(err)
				return
			}
			db = stdlib.OpenDB(*cfg)
			stmts = append(stmts, "DROP FUNCTION IF EXISTS "+mt+"_kombu_notify()")
		} else {
			cfg := mysql.NewConfig()
			cfg.User, cfg.Net, cfg.Addr, cfg.DBName = u.User.Username(), "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
			cfg.Passwd, _ = u.User.Password()
			conn, err := mysql.NewConnector(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			db = sql.OpenDB(conn)
		}
		defer db.Close()
		for _, s := range stmts {
			if _, err := db.ExecContext(context.Background(), s); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
	return withQuery(base, "queue_tablename="+qt+"&message_tablename="+mt)
}

// TestBinarySQLA: publish, queues, consume and bench on the SQLAlchemy
// transport, on PostgreSQL and MariaDB.
func TestBinarySQLA(t *testing.T) {
	for _, db := range []struct{ name, env string }{{"postgresql", "KOMBU_TEST_POSTGRES_URL"}, {"mysql", "KOMBU_TEST_MYSQL_URL"}} {
		t.Run(db.name, func(t *testing.T) {
			u := sqlaTables(t, testBroker(t, db.name, db.env))
			mustRun(t, nil, "publish", "--url", u, "--declare-queue", "cli", "--routing-key", "cli", "--count", "3", `{"n": 1}`)
			type queues struct {
				Transport string `json:"transport"`
				Queues    []struct {
					Name     string `json:"name"`
					Exists   bool   `json:"exists"`
					Messages int64  `json:"messages"`
				} `json:"queues"`
			}
			q := decodeJSON[queues](t, mustRun(t, nil, "queues", "--url", u, "--json").stdout)
			if q.Transport != "sqlalchemy" || len(q.Queues) != 1 || q.Queues[0].Name != "cli" || q.Queues[0].Messages != 3 {
				t.Fatalf("queues after publishing 3: %+v", q)
			}
			lines := jsonLines[map[string]any](t, mustRun(t, nil, "consume", "--url", u, "--queue", "cli", "--count", "3", "--timeout", "20s", "--json").stdout)
			if len(lines) != 3 {
				t.Fatalf("consumed %d messages, want 3: %v", len(lines), lines)
			}
			q = decodeJSON[queues](t, mustRun(t, nil, "queues", "--url", u, "--json", "cli").stdout)
			if len(q.Queues) != 1 || !q.Queues[0].Exists || q.Queues[0].Messages != 0 {
				t.Fatalf("queues after consuming: %+v", q)
			}
			res := decodeJSON[map[string]any](t, mustRun(t, nil, "bench", "--url", u, "--messages", "100", "--latency", "10", "--json").stdout)
			if res["transport"] != "sqlalchemy" {
				t.Fatalf("bench: %v", res)
			}
			if v, _ := res["consume_per_s"].(float64); v <= 0 {
				t.Fatalf("bench consume_per_s = %v", res["consume_per_s"])
			}
		})
	}
}
