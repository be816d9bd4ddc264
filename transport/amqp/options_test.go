package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

func TestParseConfigDefaults(t *testing.T) {
	s, err := parseConfig(transport.Config{Scheme: "amqp"})
	if err != nil {
		t.Fatal(err)
	}
	if s.host != "localhost" || s.port != 5672 || s.user != "guest" || s.password != "guest" || s.vhost != "/" {
		t.Errorf("pyamqp defaults: %+v", s)
	}
	if s.heartbeat != DefaultHeartbeat || s.connectTimeout != DefaultConnectTimeout || s.useTLS || s.confirm {
		t.Errorf("defaults: %+v", s)
	}
	if !s.recovery || s.maxRetries != -1 || s.intervalStart != 2*time.Second || s.intervalMax != 30*time.Second {
		t.Errorf("recovery defaults: %+v", s)
	}
	// pyamqp fills each falsy parameter on its own.
	s, _ = parseConfig(transport.Config{UserID: "bob", VirtualHost: "v1", Port: 1234})
	if s.user != "bob" || s.password != "guest" || s.vhost != "v1" || s.port != 1234 {
		t.Errorf("partial: %+v", s)
	}
}

func TestParseConfigTLS(t *testing.T) {
	s, err := parseConfig(transport.Config{Scheme: "amqps", Hostname: "rabbit.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.useTLS || s.port != 5671 || s.tlsCfg.cfg.ServerName != "rabbit.example" || s.tlsCfg.cfg.InsecureSkipVerify {
		t.Errorf("amqps: %+v %+v", s, s.tlsCfg.cfg)
	}
	base := &tls.Config{ServerName: "given", MinVersion: tls.VersionTLS13}
	s, err = parseConfig(transport.Config{Scheme: "amqp", TLS: base, Port: 5673,
		Options: map[string]any{"ssl_cert_reqs": "CERT_NONE"}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.useTLS || s.port != 5673 || s.tlsCfg.cfg.ServerName != "given" || !s.tlsCfg.cfg.InsecureSkipVerify ||
		s.tlsCfg.cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("cfg.TLS + ssl_cert_reqs: %+v", s.tlsCfg.cfg)
	}
	if base.InsecureSkipVerify {
		t.Error("the caller's tls.Config was modified")
	}
	s, err = parseConfig(transport.Config{Options: map[string]any{
		"ssl": map[string]string{"cert_reqs": "required", "server_hostname": "sni.example"}}})
	if err != nil || !s.useTLS || s.port != 5671 || s.tlsCfg.cfg.ServerName != "sni.example" {
		t.Errorf("ssl map: %v %+v", err, s)
	}
	s, err = parseConfig(transport.Config{Options: map[string]any{"ssl": "true", "ssl_check_hostname": "false"}})
	if err != nil || !s.useTLS || !s.tlsCfg.cfg.InsecureSkipVerify || s.tlsCfg.cfg.VerifyConnection == nil {
		t.Errorf("check_hostname=false must verify the chain only: %v %+v", err, s)
	}
	for _, opts := range []map[string]any{
		{"ssl_cert_reqs": "sometimes"},
		{"ssl_ca_certs": "/nonexistent/ca.pem"},
		{"ssl_certfile": "/nonexistent/cert.pem"},
	} {
		if _, err := parseConfig(transport.Config{Options: opts}); err == nil {
			t.Errorf("%v: want an error", opts)
		}
	}
}

func TestParseConfigOptions(t *testing.T) {
	s, err := parseConfig(transport.Config{Options: map[string]any{
		"confirm_publish": "yes", "connection_name": "svc-1", "max_retries": "3",
		"interval_start": "0.5", "interval_step": 1, "interval_max": 4.0, "recovery": false,
		"frame_max": "8192", "close_timeout": 2 * time.Second,
		"client_properties": map[string]any{"x": "y"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.confirm || s.connName != "svc-1" || s.maxRetries != 3 || s.intervalStart != 500*time.Millisecond ||
		s.intervalStep != time.Second || s.intervalMax != 4*time.Second || s.recovery || s.frameMax != 8192 ||
		s.closeTimeout != 2*time.Second || s.clientProps["x"] != "y" {
		t.Errorf("options: %+v", s)
	}
	s, _ = parseConfig(transport.Config{Options: map[string]any{"max_retries": "None"}})
	if s.maxRetries != -1 {
		t.Errorf("max_retries=None must mean unlimited, got %d", s.maxRetries)
	}
	for _, opts := range []map[string]any{
		{"confirm_publish": "maybe"}, {"max_retries": "x"}, {"interval_start": "-1"},
		{"interval_max": []int{}}, {"client_properties": "x"}, {"ssl": "perhaps"},
	} {
		if _, err := New(transport.Config{Options: opts}); !errors.Is(err, ErrBadOption) {
			t.Errorf("%v: err = %v, want ErrBadOption", opts, err)
		}
	}
}

func TestInfo(t *testing.T) {
	tr, err := New(transport.Config{Options: map[string]any{"confirm_publish": true}})
	if err != nil {
		t.Fatal(err)
	}
	info := tr.Info()
	if info.Driver != "amqp" || info.DefaultPort != 5672 || !info.Priorities || info.Fanout != "broadcast" ||
		!info.Heartbeats || !info.Confirms || len(info.ExchangeTypes) != 4 {
		t.Errorf("info: %+v", info)
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
