package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

func TestParseConfigDefaults(t *testing.T) {
	o, err := ParseConfig(transport.Config{Scheme: "amqp"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Hostname != "localhost" || o.UserID != "guest" || o.Password != "guest" || o.VirtualHost != "/" ||
		o.LoginMethod != LoginPlain || o.Locale != "en_US" {
		t.Errorf("pyamqp defaults: %+v", o)
	}
	if o.Heartbeat != 0 || o.ConnectTimeout != DefaultConnectTimeout || o.TLS != nil || o.SSL != nil ||
		o.ConfirmPublish || o.FrameMax != 131072 || o.ChannelMax != 0 || o.ReadTimeout != 0 || o.WriteTimeout != 0 {
		t.Errorf("defaults: %+v", o)
	}
	if !o.Recovery || o.MaxRetries != -1 || o.IntervalStart != 2*time.Second || o.IntervalStep != 2*time.Second ||
		o.IntervalMax != 30*time.Second || o.CloseTimeout != 5*time.Second {
		t.Errorf("recovery defaults: %+v", o)
	}
	tr, err := NewWithOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Options(); got.Port != 5672 || got.TLS != nil {
		t.Errorf("resolved: port %d, TLS %v", got.Port, got.TLS)
	}
	// pyamqp fills each falsy parameter on its own.
	o, _ = ParseConfig(transport.Config{UserID: "bob", VirtualHost: "v1", Port: 1234})
	if o.UserID != "bob" || o.Password != "guest" || o.VirtualHost != "v1" || o.Port != 1234 {
		t.Errorf("partial: %+v", o)
	}
	// NewWithOptions fills the zero fields that have no meaning as zero.
	tr, err = NewWithOptions(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Options(); got.Hostname != "localhost" || got.LoginMethod != LoginPlain || got.Port != 5672 ||
		got.CloseTimeout != 5*time.Second || got.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("zero Options resolved to %+v", got)
	}
}

func newFromConfig(t *testing.T, cfg transport.Config) *tls.Config {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("%+v: %v", cfg.Options, err)
	}
	return tr.s.tls
}

func TestParseConfigTLS(t *testing.T) {
	tc := newFromConfig(t, transport.Config{Scheme: "amqps", Hostname: "rabbit.example"})
	if tc == nil || tc.ServerName != "rabbit.example" || tc.InsecureSkipVerify {
		t.Errorf("amqps: %+v", tc)
	}
	tr, _ := New(transport.Config{Scheme: "amqps"})
	if tr.Options().Port != 5671 {
		t.Errorf("amqps port = %d", tr.Options().Port)
	}
	base := &tls.Config{ServerName: "given", MinVersion: tls.VersionTLS13}
	tc = newFromConfig(t, transport.Config{Scheme: "amqp", TLS: base, Port: 5673,
		Options: map[string]any{"ssl_cert_reqs": "CERT_NONE"}})
	if tc.ServerName != "given" || !tc.InsecureSkipVerify || tc.MinVersion != tls.VersionTLS13 {
		t.Errorf("cfg.TLS + ssl_cert_reqs: %+v", tc)
	}
	if base.InsecureSkipVerify {
		t.Error("the caller's tls.Config was modified")
	}
	// The ssl map, as Kombu's ssl dict and as messaging passes URL keys.
	for _, m := range []any{
		map[string]string{"cert_reqs": "required", "server_hostname": "sni.example"},
		map[string]any{"ssl_cert_reqs": "ssl.CERT_REQUIRED", "ssl_server_hostname": "sni.example"},
		`{"cert_reqs": 2, "server_hostname": "sni.example"}`,
	} {
		tc = newFromConfig(t, transport.Config{Options: map[string]any{"ssl": m}})
		if tc == nil || tc.ServerName != "sni.example" || tc.InsecureSkipVerify {
			t.Errorf("ssl map %v: %+v", m, tc)
		}
	}
	tc = newFromConfig(t, transport.Config{Options: map[string]any{"ssl": "true", "ssl_check_hostname": "false"}})
	if !tc.InsecureSkipVerify || tc.VerifyConnection == nil {
		t.Errorf("check_hostname=false must verify the chain only: %+v", tc)
	}
	if tc = newFromConfig(t, transport.Config{Options: map[string]any{"ssl": false}}); tc != nil {
		t.Errorf("ssl=false: TLS on")
	}
	for _, opts := range []map[string]any{
		{"ssl_cert_reqs": "sometimes"},
		{"ssl": map[string]any{"cert_reqs": "sometimes"}},
		{"ssl": map[string]any{"ca_cert": "/tmp/x"}}, // misspelt key in the ssl map
		{"ssl_ca_certs": "/nonexistent/ca.pem"},
		{"ssl_certfile": "/nonexistent/cert.pem"},
		{"ssl": "perhaps"},
	} {
		_, err := New(transport.Config{Options: opts})
		var oe *transport.OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%v: err = %v, want a *transport.OptionError", opts, err)
		}
	}
}

func TestParseConfigOptions(t *testing.T) {
	o, err := ParseConfig(transport.Config{Heartbeat: 10 * time.Second, Options: map[string]any{
		"confirm_publish": "yes", "connection_name": "svc-1", "max_retries": "3",
		"interval_start": "0.5", "interval_step": 1, "interval_max": 4.0, "recovery": false,
		"frame_max": "8192", "close_timeout": 2 * time.Second, "channel_max": "16",
		"read_timeout": "1.5", "write_timeout": 2, "heartbeat": "0", "connect_timeout": "3",
		"connect_retries_timeout": 20, "locale": "de_DE", "login_method": "AMQPLAIN",
		"client_properties": map[string]any{"x": "y"}, "insist": false,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !o.ConfirmPublish || o.ConnectionName != "svc-1" || o.MaxRetries != 3 || o.IntervalStart != 500*time.Millisecond ||
		o.IntervalStep != time.Second || o.IntervalMax != 4*time.Second || o.Recovery || o.FrameMax != 8192 ||
		o.CloseTimeout != 2*time.Second || o.ClientProperties["x"] != "y" || o.ChannelMax != 16 ||
		o.ReadTimeout != 1500*time.Millisecond || o.WriteTimeout != 2*time.Second || o.ConnectTimeout != 3*time.Second ||
		o.ConnectRetriesTimeout != 20*time.Second || o.Locale != "de_DE" || o.LoginMethod != LoginAMQPlain {
		t.Errorf("options: %+v", o)
	}
	// heartbeat=0 in the options wins over Config.Heartbeat and disables them.
	if o.Heartbeat != 0 {
		t.Errorf("heartbeat = %v, want 0", o.Heartbeat)
	}
	for _, v := range []any{"None", nil, -1, "-5"} {
		o, err = ParseConfig(transport.Config{Options: map[string]any{"max_retries": v}})
		if err != nil || o.MaxRetries != -1 {
			t.Errorf("max_retries=%v must mean unlimited, got %d (%v)", v, o.MaxRetries, err)
		}
	}
	if tr, _ := New(transport.Config{Heartbeat: 300 * time.Millisecond}); tr.Options().Heartbeat != time.Second {
		t.Errorf("a heartbeat under 1 s must round up to AMQP's 1 s, got %v", tr.Options().Heartbeat)
	}
	for _, opts := range []map[string]any{
		{"confirm_publish": "maybe"}, {"max_retries": "x"}, {"interval_start": "-1"},
		{"interval_max": []int{}}, {"client_properties": "x"}, {"channel_max": 70000},
		{"frame_max": 100}, {"read_timeout": "soon"}, {"client_properties": map[string]any{"f": func() {}}},
	} {
		_, err := New(transport.Config{Options: opts})
		var oe *transport.OptionError
		if !errors.As(err, &oe) || oe.Transport != "amqp" {
			t.Errorf("%v: err = %v, want a *transport.OptionError", opts, err)
		}
	}
}

// TestUnknownOption: a misspelt option is an error naming it and listing
// the valid ones (Kombu would ignore it).
func TestUnknownOption(t *testing.T) {
	_, err := New(transport.Config{Options: map[string]any{"confirm_publsh": true, "heartbeet": 5}})
	var oe *transport.OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want *transport.OptionError", err)
	}
	if oe.Key != "confirm_publsh" || !slices.Equal(oe.Unknown, []string{"confirm_publsh", "heartbeet"}) {
		t.Errorf("unknown: %+v", oe)
	}
	for _, k := range []string{"confirm_publish", "heartbeat", "login_method", "read_timeout", "write_timeout",
		"channel_max", "ssl_certfile", "max_retries", "connect_retries_timeout"} {
		if !slices.Contains(oe.Valid, k) {
			t.Errorf("valid options lack %s: %v", k, oe.Valid)
		}
	}
	if !strings.Contains(err.Error(), "confirm_publish") {
		t.Errorf("the message must list the valid options: %v", err)
	}
}

// TestRefusedOption: options pyamqp takes that cannot work here are
// refused with the reason, never accepted and ignored.
func TestRefusedOption(t *testing.T) {
	for k, v := range map[string]any{
		"on_blocked": "f", "on_unblocked": "f", "socket_settings": map[string]any{"TCP_NODELAY": 1},
		"authentication": "x", "insist": true, "host": "h:1", "frame_writer": "w",
	} {
		_, err := New(transport.Config{Options: map[string]any{k: v}})
		var oe *transport.OptionError
		if !errors.As(err, &oe) || oe.Key != k || oe.Reason == "unknown option" || oe.Reason == "" {
			t.Errorf("%s: err = %v, want a refusal with a reason", k, err)
		}
	}
}

func TestLoginMethodOptions(t *testing.T) {
	cert := testClientCert(t)
	cases := []struct {
		opts map[string]any
		tls  *tls.Config
		ok   bool
		mech string
	}{
		{opts: map[string]any{"login_method": "EXTERNAL"}},                                        // no TLS
		{opts: map[string]any{"login_method": "EXTERNAL", "ssl": true}},                           // no client cert
		{opts: map[string]any{"login_method": "external"}, tls: &tls.Config{}},                    // no client cert
		{opts: map[string]any{"login_method": "EXTERNAL"}, tls: cert, ok: true, mech: "EXTERNAL"}, // cert in TLS
		{opts: map[string]any{"login_method": "GSSAPI"}},
		{opts: map[string]any{"login_method": "X-TOKEN"}},
		{opts: map[string]any{"login_method": "X-TOKEN", "login_response": "abc"}, ok: true, mech: "X-TOKEN"},
		{opts: map[string]any{"login_method": "amqplain"}, ok: true, mech: "AMQPLAIN"},
		{opts: map[string]any{}, ok: true, mech: "PLAIN"},
	}
	for _, tc := range cases {
		tr, err := New(transport.Config{Options: tc.opts, TLS: tc.tls})
		if !tc.ok {
			var oe *transport.OptionError
			if !errors.As(err, &oe) || oe.Key != "login_method" {
				t.Errorf("%v: err = %v, want an OptionError about login_method", tc.opts, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.opts, err)
			continue
		}
		if len(tr.s.auth) != 1 || tr.s.auth[0].Mechanism() != tc.mech {
			t.Errorf("%v: SASL %v, want only %s (never a fallback)", tc.opts, tr.s.auth, tc.mech)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("confirm_publish", "yes", "ssl", "true")
	f.Add("heartbeat", "0", "ssl_cert_reqs", "CERT_NONE")
	f.Add("max_retries", "None", "ssl", `{"cert_reqs": 2}`)
	f.Add("channel_max", "70000", "read_timeout", "1e400")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		_, err := New(transport.Config{Options: map[string]any{k1: v1, k2: v2}})
		var oe *transport.OptionError
		if err != nil && !errors.As(err, &oe) {
			t.Fatalf("%s=%q %s=%q: %v is not a *transport.OptionError", k1, v1, k2, v2, err)
		}
	})
}

func TestInfo(t *testing.T) {
	tr, err := New(transport.Config{Options: map[string]any{"confirm_publish": true}})
	if err != nil {
		t.Fatal(err)
	}
	info := tr.Info()
	if info.Driver != "amqp" || info.DefaultPort != 5672 || !info.Priorities || info.Fanout != "broadcast" ||
		info.Heartbeats || !info.Confirms || len(info.ExchangeTypes) != 4 {
		t.Errorf("info: %+v", info)
	}
	if tr, _ := New(transport.Config{Heartbeat: 30 * time.Second}); !tr.Info().Heartbeats {
		t.Error("Info.Heartbeats with heartbeat=30")
	}
}

// TestDialRefused needs no broker: a closed port gives a connection error.
func TestDialRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	tr, _ := New(transport.Config{Hostname: "127.0.0.1", Port: port})
	h, _ := hub.New(hub.Options{})
	defer h.Close()
	_, err = tr.Dial(context.Background(), h)
	if !transport.IsConnectionError(err) || !errors.Is(err, transport.ErrConnectionLost) {
		t.Fatalf("err = %v, want a connection error", err)
	}
	if _, err := tr.Dial(context.Background(), nil); err == nil {
		t.Fatal("Dial without a hub must fail")
	}
}

// TestDialHandshakeTimeout needs no broker: a server that accepts and says
// nothing makes the handshake time out with a connection error, not the
// "bad credentials" amqp091 reports for a silent close.
func TestDialHandshakeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	tr, _ := New(transport.Config{Hostname: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port,
		ConnectTimeout: 200 * time.Millisecond})
	h, _ := hub.New(hub.Options{})
	defer h.Close()
	_, err = tr.Dial(context.Background(), h)
	var be *transport.BrokerError
	if !errors.As(err, &be) || be.Code == 403 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a handshake timeout", err)
	}
	for c := range accepted {
		c.Close()
	}
}
