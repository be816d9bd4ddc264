package redis

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func mustOptions(t *testing.T, cfg transport.Config) *options {
	t.Helper()
	o, err := parseOptions(cfg)
	if err != nil {
		t.Fatalf("parseOptions(%+v): %v", cfg, err)
	}
	return o
}

// Item 21: the DB rule.
func TestDBRule(t *testing.T) {
	for vhost, want := range map[string]int{"": 0, "/": 0, "1": 1, "/1": 1, "/15": 15} {
		if o := mustOptions(t, transport.Config{VirtualHost: vhost}); o.db != want {
			t.Errorf("vhost %q: db %d, want %d", vhost, o.db, want)
		}
	}
	_, err := parseOptions(transport.Config{VirtualHost: "/foo"})
	if err == nil || !strings.Contains(err.Error(), "Database is int between 0 and limit - 1, not foo") {
		t.Errorf("vhost /foo: %v", err)
	}
}

// Item 22: unix sockets, rediss, client_name, health_check_interval.
func TestConnectionForms(t *testing.T) {
	o := mustOptions(t, transport.Config{Scheme: "redis", Hostname: "socket:///tmp/redis.sock"})
	if o.network != "unix" || o.addr != "/tmp/redis.sock" {
		t.Errorf("socket form: %s %s", o.network, o.addr)
	}
	o = mustOptions(t, transport.Config{Scheme: "redis", Hostname: "socket://:foo@/var/run/redis.sock"})
	if o.addr != "/var/run/redis.sock" || o.password != "foo" {
		t.Errorf("socket with password: %s %q", o.addr, o.password)
	}
	o = mustOptions(t, transport.Config{Scheme: "socket", Hostname: "/var/run/r.sock", VirtualHost: "3"})
	if o.network != "unix" || o.addr != "/var/run/r.sock" || o.db != 3 {
		t.Errorf("socket scheme: %s %s db %d", o.network, o.addr, o.db)
	}
	o = mustOptions(t, transport.Config{Scheme: "redis+socket", VirtualHost: "/tmp/x.sock",
		Options: map[string]any{"virtual_host": "2"}})
	if o.addr != "/tmp/x.sock" || o.db != 2 {
		t.Errorf("redis+socket with the path in the vhost: %s db %d", o.addr, o.db)
	}
	o = mustOptions(t, transport.Config{Scheme: "rediss", Hostname: "h", Port: 6380,
		Options: map[string]any{"client_name": "me", "health_check_interval": "7"}})
	if o.tls == nil || !o.tls.InsecureSkipVerify || o.addr != "h:6380" || o.clientName != "me" || o.healthCheck != 7*time.Second {
		t.Errorf("rediss: %+v", o)
	}
	o = mustOptions(t, transport.Config{Scheme: "rediss", Hostname: "h",
		Options: map[string]any{"ssl_cert_reqs": "CERT_REQUIRED", "ssl_check_hostname": "true"}})
	if o.tls.InsecureSkipVerify || o.tls.ServerName != "h" {
		t.Errorf("rediss verified: %+v", o.tls)
	}
	o = mustOptions(t, transport.Config{Scheme: "redis", TLS: &tls.Config{MinVersion: tls.VersionTLS13}})
	if o.tls == nil || o.tls.MinVersion != tls.VersionTLS13 {
		t.Error("cfg.TLS ignored")
	}
	if _, err := parseOptions(transport.Config{Scheme: "rediss", Options: map[string]any{"ssl_cert_reqs": "sometimes"}}); err == nil {
		t.Error("bad ssl_cert_reqs accepted")
	}
}

func TestSentinelOptions(t *testing.T) {
	if _, err := parseOptions(transport.Config{Scheme: "sentinel", Hostname: "h1"}); err == nil {
		t.Error("sentinel without master_name accepted")
	}
	o := mustOptions(t, transport.Config{Scheme: "sentinel", Hostname: "h1",
		Alternates: []string{"sentinel://h2:26380", "redis://x", "sentinel://h1"},
		Options:    map[string]any{"master_name": "mymaster", "sentinel_kwargs": `{"password": "sp"}`}})
	if strings.Join(o.sentinels, ",") != "h1:26379,h2:26380" || o.masterName != "mymaster" || o.sentinelPwd != "sp" {
		t.Errorf("sentinel: %v %q %q", o.sentinels, o.masterName, o.sentinelPwd)
	}
}

// §1.15: every option with Kombu's default, and strings from a URL.
func TestTransportOptions(t *testing.T) {
	o := mustOptions(t, transport.Config{})
	if o.bodyEncoding != "base64" || o.sep != "\x06\x16" || !o.ackEmulation || o.unackedKey != "unacked" ||
		o.unackedIndexKey != "unacked_index" || o.unackedMutexKey != "unacked_mutex" ||
		o.mutexExpire != 300*time.Second || o.visibility != time.Hour || o.restoreLimit != 0 ||
		o.restoreInterval != 10*time.Second || o.restoreThrottle != 10 || o.fanoutPrefix != "/0." ||
		!o.fanoutPatterns || o.prefix != "" || o.queueOrder != "round_robin" ||
		len(o.steps) != 4 || o.brpopTimeout != time.Second || o.maxConns != 10 ||
		o.healthCheck != 25*time.Second || o.addr != "127.0.0.1:6379" {
		t.Errorf("defaults: %+v", o)
	}
	o = mustOptions(t, transport.Config{Options: map[string]any{
		"body_encoding": "utf-8", "sep": ":", "ack_emulation": "false", "unacked_key": "u",
		"visibility_timeout": "2.5", "unacked_restore_limit": "7", "unacked_restore_interval": "0",
		"unacked_restore_throttle": "3", "fanout_patterns": "no", "global_keyprefix": "p:",
		"queue_order_strategy": "sorted", "priority_steps": "[0, 5]", "polling_interval": 2,
		"max_connections": "4", "socket_timeout": 1.5,
	}})
	if o.bodyEncoding != "utf-8" || o.sep != ":" || o.ackEmulation || o.unackedKey != "u" ||
		o.visibility != 2500*time.Millisecond || o.restoreLimit != 7 || o.restoreInterval != 10*time.Second ||
		o.restoreThrottle != 3 || o.fanoutPatterns || o.prefix != "p:" || o.queueOrder != "sorted" ||
		len(o.steps) != 2 || o.steps[1] != 5 || o.brpopTimeout != 2*time.Second || o.maxConns != 4 ||
		o.sockTimeout != 1500*time.Millisecond {
		t.Errorf("parsed: %+v", o)
	}
	for _, bad := range []map[string]any{
		{"visibility_timeout": "soon"}, {"queue_order_strategy": "random"}, {"priority_steps": "a,b"},
		{"body_encoding": "rot13"}, {"sep": ""}, {"ack_emulation": "maybe"}, {"fanout_prefix": 3},
	} {
		if _, err := parseOptions(transport.Config{Options: bad}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// Item 2 and §1.7: priority steps, including Kombu's index -1 quirk.
func TestPrioritySteps(t *testing.T) {
	o := mustOptions(t, transport.Config{})
	for p, want := range map[int]string{0: "q", 2: "q", 3: "q\x06\x163", 5: "q\x06\x163", 6: "q\x06\x166",
		9: "q\x06\x169", 313: "q\x06\x169", -1: "q"} {
		if got := o.queueKey("q", p); got != want {
			t.Errorf("priority %d: %q, want %q", p, got, want)
		}
	}
	o = mustOptions(t, transport.Config{Options: map[string]any{"priority_steps": []any{1, 5}}})
	if got := o.queueKey("q", 0); got != "q\x06\x165" {
		t.Errorf("below every step: %q, want the last step", got)
	}
	if got := strings.Join(o.stepKeys("q"), ","); got != "q\x06\x161,q\x06\x165" {
		t.Errorf("step keys %q", got)
	}
}

func TestInfo(t *testing.T) {
	tr, err := New(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	i := tr.Info()
	if i.Driver != "redis" || i.DefaultPort != 6379 || !i.Priorities || i.Fanout != "pubsub" ||
		strings.Join(i.ExchangeTypes, ",") != "direct,topic,fanout" {
		t.Errorf("info %+v", i)
	}
}

// §1.9: BRPOP "qb" "qa" "qb\x06\x163" "qa\x06\x163" ... "1", prefixed. The
// consume script visits the dirty keys in the same order.
func TestPopKeysOrder(t *testing.T) {
	o := mustOptions(t, transport.Config{Options: map[string]any{"global_keyprefix": "pfx:"}})
	st := &store{o: o}
	st.hubState.init(st)
	st.active = []string{"qb", "qc", "qa"}
	st.cycle.Update(st.active)
	st.setActive(st.active)
	keys, qs := st.allKeys()
	want := "pfx:qb pfx:qc pfx:qa pfx:qb\x06\x163 pfx:qc\x06\x163 pfx:qa\x06\x163 " +
		"pfx:qb\x06\x166 pfx:qc\x06\x166 pfx:qa\x06\x166 pfx:qb\x06\x169 pfx:qc\x06\x169 pfx:qa\x06\x169"
	if strings.Join(keys, " ") != want || strings.Join(qs, " ") != "qb qc qa qb qc qa qb qc qa qb qc qa" {
		t.Errorf("keys %q queues %q", keys, qs)
	}
	// Every key of a new queue is dirty; the script visits the dirty ones
	// in the same order.
	if dk, _ := st.dirtyKeys(); strings.Join(dk, " ") != want {
		t.Errorf("dirty keys of new queues %q", dk)
	}
	clear(st.dirty)
	st.markDirty("pfx:qa\x06\x163")
	st.markDirty("pfx:qb\x06\x169")
	st.markDirty("pfx:qc")
	dk, dq := st.dirtyKeys()
	if strings.Join(dk, " ") != "pfx:qc pfx:qa\x06\x163 pfx:qb\x06\x169" || strings.Join(dq, " ") != "qc qa qb" {
		t.Errorf("dirty keys %q queues %q", dk, dq)
	}
	if got := o.brpopTimeoutArg(); got != "1" {
		t.Errorf("timeout %q", got)
	}
	o = mustOptions(t, transport.Config{Options: map[string]any{"polling_interval": "0.5"}})
	if got := o.brpopTimeoutArg(); got != "0.5" {
		t.Errorf("timeout with polling_interval 0.5: %q", got)
	}
}
