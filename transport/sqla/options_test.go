package sqla

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := ParseConfig(transport.Config{Scheme: "sqla+postgresql+psycopg2", Hostname: "db", VirtualHost: "/app"})
	if err != nil {
		t.Fatal(err)
	}
	o, err = o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Dialect: PostgreSQL, Host: "db", Port: 5432, User: "postgres", Database: "app",
		QueueTable: "kombu_queue", MessageTable: "kombu_message", PollingInterval: time.Second,
		ListenPollInterval: 10 * time.Second, VisibilityTimeout: time.Hour, PoolSize: 5, MaxOverflow: 10,
		ConnectTimeout: 10 * time.Second}
	o.Logger = nil
	if o != want {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
}

func TestOptionsFromURLQuery(t *testing.T) {
	o, err := ParseConfig(transport.Config{Scheme: "sqlalchemy+mysql+pymysql", Options: map[string]any{
		"queue_tablename": "q1", "message_tablename": "m1", "polling_interval": "0.5", "listen": "false",
		"visibility_timeout": "0", "pool_size": "3", "echo": "true",
	}})
	if err != nil {
		t.Fatal(err)
	}
	o, err = o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Dialect != MySQL || o.Port != 3306 || o.User != "root" || o.QueueTable != "q1" || o.MessageTable != "m1" ||
		o.PollingInterval != 500*time.Millisecond || !o.NoListen || o.VisibilityTimeout >= 0 || o.PoolSize != 3 {
		t.Fatalf("got %+v", o)
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		opts   map[string]any
		want   string
	}{
		{"sqla+oracle", nil, "unsupported database"},
		{"sqla+sqlite", nil, "SQLite is not supported"},
		{"sqla+postgresql", map[string]any{"queue_tablenme": "x"}, `unknown option "queue_tablenme"`},
		{"sqla+postgresql", map[string]any{"polling_interval": "soon"}, "polling_interval"},
		{"sqla+postgresql", map[string]any{"message_tablename": "bad;name"}, "message_tablename"},
		{"sqla+postgresql", map[string]any{"message_tablename": "Upper"}, "lower-case"},
		{"sqla+postgresql", map[string]any{"queue_tablename": "same", "message_tablename": "same"}, "must differ"},
	} {
		o, err := ParseConfig(transport.Config{Scheme: tc.scheme, Options: tc.opts})
		if err == nil {
			_, err = o.withDefaults()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want one containing %q", tc.scheme, tc.opts, err, tc.want)
		}
		var oe *transport.OptionError
		if strings.Contains(tc.want, "option") && !errors.As(err, &oe) {
			t.Errorf("%s %v: %T is not a *transport.OptionError", tc.scheme, tc.opts, err)
		}
	}
}

// FuzzOptions: no scheme or option value makes the parser panic, and a
// configuration it accepts has table names safe to put in SQL text.
func FuzzOptions(f *testing.F) {
	f.Add("sqla+postgresql", "kombu_queue", "kombu_message", "1")
	f.Add("sqlalchemy+mysql+pymysql", "q", "m", "0.1")
	f.Add("sqla+", "", "x;drop", "-1")
	f.Fuzz(func(t *testing.T, scheme, qt, mt, poll string) {
		o, err := ParseConfig(transport.Config{Scheme: scheme, Options: map[string]any{
			"queue_tablename": qt, "message_tablename": mt, "polling_interval": poll}})
		if err != nil {
			return
		}
		if o, err = o.withDefaults(); err != nil {
			return
		}
		for _, name := range []string{o.QueueTable, o.MessageTable} {
			if !tableName.MatchString(name) {
				t.Fatalf("accepted table name %q", name)
			}
		}
		if o.PollingInterval <= 0 {
			t.Fatalf("polling interval %v", o.PollingInterval)
		}
	})
}

func TestVersions(t *testing.T) {
	if v := pgVersion("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64"); v != 15 {
		t.Errorf("pgVersion: %v", v)
	}
	if v := pgVersion("PostgreSQL 9.4.26 on x86_64"); v >= 9.5 {
		t.Errorf("pgVersion 9.4: %v", v)
	}
	for _, tc := range []struct {
		v       string
		mariadb bool
		want    bool
	}{
		{"10.11.19-MariaDB-0+deb12u1", true, true},
		{"10.5.8-MariaDB", true, false},
		{"8.0.36", false, true},
		{"5.7.44-log", false, false},
	} {
		if got := mysqlSkipLocked(tc.v, tc.mariadb); got != tc.want {
			t.Errorf("mysqlSkipLocked(%q): %v", tc.v, got)
		}
	}
}
