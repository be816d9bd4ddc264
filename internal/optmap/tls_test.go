package optmap

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kombu-go/kombu/transport"
)

func TestTLSKeys(t *testing.T) {
	r := New("redis", map[string]any{"ssl_cert_reqs": "CERT_REQUIRED", "ssl_check_hostname": "yes",
		"ssl_server_hostname": "sni", "ssl_ca_certs": "/ca.pem"})
	got := r.TLS()
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := TLS{On: true, CertReqs: "required", CACerts: "/ca.pem", ServerHostname: "sni", CheckHostname: true, CheckHostnameSet: true}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// py-amqp's dict (no prefix) and numbers; the top-level key wins.
	r = New("amqp", map[string]any{"ssl": map[string]any{"cert_reqs": 0, "keyfile": "k"}, "ssl_keyfile": "top"})
	got = r.TLS()
	if err := r.Err(); err != nil || got.CertReqs != "none" || got.KeyFile != "top" || !got.On {
		t.Errorf("dict: %+v, %v", got, err)
	}
	for _, v := range []any{true, "1", "on"} {
		if r := New("x", map[string]any{"ssl": v}); !r.TLS().On || r.Err() != nil {
			t.Errorf("ssl=%v does not turn TLS on", v)
		}
	}
	if r := New("x", map[string]any{"ssl": "false"}); r.TLS().On {
		t.Error("ssl=false turned TLS on")
	}
	for _, bad := range []map[string]any{
		{"ssl_cert_reqs": "sometimes"}, {"ssl_cert_reqs": 7}, {"ssl": []int{1}}, {"ssl": map[string]any{"cert_req": "none"}},
		{"ssl_check_hostname": "maybe"},
	} {
		r := New("x", bad)
		r.TLS()
		var oe *transport.OptionError
		if err := r.Err(); !errors.As(err, &oe) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	c, err := TLS{}.Config("redis", "h", false, false)
	if err != nil || !c.InsecureSkipVerify || c.VerifyConnection != nil || c.ServerName != "h" || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("no verification: %+v, %v", c, err)
	}
	c, _ = TLS{CertReqs: "required"}.Config("redis", "h", false, false)
	if !c.InsecureSkipVerify || c.VerifyConnection == nil {
		t.Error("the chain without the name: want a VerifyConnection hook")
	}
	c, _ = TLS{ServerHostname: "sni"}.Config("amqp", "h", true, true)
	if c.InsecureSkipVerify || c.ServerName != "sni" {
		t.Errorf("full verification: %+v", c)
	}
	c, _ = TLS{CertReqs: "none"}.Config("amqp", "h", true, true)
	if !c.InsecureSkipVerify {
		t.Error("CERT_NONE verifies")
	}
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []TLS{{CACerts: filepath.Join(dir, "missing")}, {CACerts: junk}, {CertFile: junk}} {
		var oe *transport.OptionError
		if _, err := bad.Config("redis", "h", true, true); !errors.As(err, &oe) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestAlwaysRefuseConnectionKeys(t *testing.T) {
	r := New("redis", map[string]any{"confirm_publish": "yes", "max_retries": "none", "interval_start": 0.5,
		"socket_keepalive_options": nil})
	r.Always("confirm_publish", true, "always")
	r.ConnectionKeys()
	r.Refuse(map[string]string{"socket_keepalive_options": "python", "min_other_sentinels": "quorum"})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	var oe *transport.OptionError
	for _, tc := range []struct {
		opts map[string]any
		key  string
	}{
		{map[string]any{"confirm_publish": false}, "confirm_publish"},
		{map[string]any{"max_retries": "many"}, "max_retries"},
		{map[string]any{"interval_max": "soon"}, "interval_max"},
		{map[string]any{"min_other_sentinels": 1}, "min_other_sentinels"},
	} {
		r := New("redis", tc.opts)
		r.Always("confirm_publish", true, "always")
		r.ConnectionKeys()
		r.Refuse(map[string]string{"min_other_sentinels": "quorum"})
		if err := r.Err(); !errors.As(err, &oe) || oe.Key != tc.key || oe.Reason == "unknown option" {
			t.Errorf("%v: %v", tc.opts, err)
		}
	}
	// A refused key is not listed among the valid ones.
	r = New("redis", map[string]any{"typo": 1, "min_other_sentinels": nil})
	r.Refuse(map[string]string{"min_other_sentinels": "quorum"})
	r.Known("visibility_timeout")
	if err := r.Err(); !errors.As(err, &oe) || oe.Key != "typo" || len(oe.Valid) != 1 || len(oe.Unknown) != 1 {
		t.Errorf("unknown beside a refused None: %v", err)
	}
}
