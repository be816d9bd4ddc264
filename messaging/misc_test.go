package messaging_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

func TestTransportInfo(t *testing.T) {
	c := memConn(t)
	info, err := c.TransportInfo()
	if err != nil || info.Driver != "memory" {
		t.Fatalf("TransportInfo = %+v, %v", info, err)
	}
	if !c.SupportsExchangeType(messaging.Topic) || c.SupportsExchangeType("x-delayed") {
		t.Error("SupportsExchangeType")
	}
	if c.Connected() {
		t.Error("TransportInfo dialled")
	}
}

func TestRetryPublic(t *testing.T) {
	calls := 0
	err := messaging.Retry(context.Background(), messaging.RetryPolicy{MaxRetries: 2, IntervalStart: -1, IntervalStep: -1, IntervalMax: -1},
		nil, func(context.Context) error { calls++; return errRefused })
	if !errors.Is(err, errRefused) || calls != 3 {
		t.Errorf("err = %v after %d calls", err, calls)
	}
	calls = 0
	err = messaging.Retry(context.Background(), messaging.RetryPolicy{IntervalStart: time.Millisecond, IntervalMax: -1},
		func(error) bool { return true }, func(context.Context) error {
			calls++
			if calls < 3 {
				return errors.New("flaky")
			}
			return nil
		})
	if err != nil || calls != 3 {
		t.Errorf("err = %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	err = messaging.Retry(ctx, messaging.RetryPolicy{IntervalStart: time.Hour}, nil, func(context.Context) error { return errRefused })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errRefused) {
		t.Errorf("ctx end: %v", err)
	}
}

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, DNSNames: []string{"broker.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestTLSFromURL(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	connect := func(url string, mod func(*messaging.Options)) (*tls.Config, error) {
		b := &fakeBroker{}
		opts := linked(b)
		if mod != nil {
			mod(&opts)
		}
		c, err := messaging.NewConnection(url, opts)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := c.Connect(context.Background()); err != nil {
			return nil, err
		}
		return b.configs[0].TLS, nil
	}
	cfg, err := connect("amqps://broker.test/?ssl_ca_certs="+cert+"&ssl_certfile="+cert+"&ssl_keyfile="+key+
		"&ssl_server_hostname=other.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.ServerName != "other.test" || cfg.InsecureSkipVerify {
		t.Errorf("TLS %+v", cfg)
	}
	cfg, err = connect("redis://h/0?ssl_check_hostname=false&ssl_ca_certs="+cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.InsecureSkipVerify || cfg.VerifyConnection == nil {
		t.Fatalf("check_hostname=false: %+v", cfg)
	}
	// The chain is still verified against the roots.
	parsed, _ := tls.LoadX509KeyPair(cert, key)
	leaf, _ := x509.ParseCertificate(parsed.Certificate[0])
	if err := cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err != nil {
		t.Errorf("own CA refused: %v", err)
	}
	cfg2, _ := connect("redis://h/0?ssl_check_hostname=false", nil)
	if err := cfg2.VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err == nil {
		t.Error("an unknown CA was accepted")
	}
	// Options.TLS is cloned and adjusted.
	base := &tls.Config{ServerName: "fixed", MinVersion: tls.VersionTLS13}
	cfg, err = connect("amqp://h/?ssl_cert_reqs=CERT_NONE", func(o *messaging.Options) { o.TLS = base })
	if err != nil {
		t.Fatal(err)
	}
	if cfg == base || cfg.ServerName != "fixed" || cfg.MinVersion != tls.VersionTLS13 || !cfg.InsecureSkipVerify || base.InsecureSkipVerify {
		t.Errorf("from Options.TLS: %+v", cfg)
	}
	for _, bad := range []string{"amqps://h/?ssl_cert_reqs=sometimes", "amqps://h/?ssl_ca_certs=/nonexistent",
		"amqps://h/?ssl_certfile=/nonexistent"} {
		if _, err := connect(bad, nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// A bad TLS setting is not retried.
	b := &fakeBroker{}
	c, _ := messaging.NewConnection("amqps://h/?ssl_ca_certs=/nonexistent", linked(b))
	defer c.Close()
	if _, err := c.DefaultChannel(context.Background()); err == nil || errors.Is(err, messaging.ErrOperational) || len(b.dialed()) != 0 {
		t.Errorf("bad TLS: %v, dials %v", err, b.dialed())
	}
}

func TestConsumerDeclareRevive(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{}},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) {}}, NoDeclare: true})
	if err := cons.Declare(ctx); err != nil {
		t.Fatal(err)
	}
	if cons.Queues()[0].Name != "amq.gen-1" || cons.Connection() != c {
		t.Errorf("generated name not adopted: %+v", cons.Queues())
	}
	ch, _ := c.Channel(ctx)
	cons.Revive(ch)
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ch.(*fakeChannel).consumers) != 1 {
		t.Error("not consuming on the revived channel")
	}
	if err := cons.Close(); err != nil || len(ch.(*fakeChannel).consumers) != 0 {
		t.Errorf("Close: %v", err)
	}
	q := messaging.Queue{Name: "q", Bindings: []messaging.Binding{{Exchange: messaging.Exchange{Name: "e"}, RoutingKey: "k"}}}
	if err := q.Bind(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if b.declared[len(b.declared)-1] != "bind q e k" {
		t.Errorf("Bind: %q", b.declared)
	}
}

func TestErrorStrings(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&messaging.OperationalError{Op: "connect", Attempts: 3, Err: errRefused}, "messaging: connect failed after 3 attempt(s): transport: connection error: connection refused"},
		{&messaging.LimitExceededError{Resource: "connection", Limit: 2}, "messaging: connection limit exceeded: 2"},
		{&messaging.DecodeError{Queue: "q", DeliveryTag: "t", Err: transport.ErrBadEnvelope}, "messaging: cannot decode message from queue q (delivery tag t): transport: malformed message envelope"},
		{&messaging.MessageStateError{State: messaging.Rejected}, "messaging: Message already acknowledged with state: REJECTED"},
	} {
		if tc.err.Error() != tc.want {
			t.Errorf("%q, want %q", tc.err.Error(), tc.want)
		}
	}
	if messaging.Persistent.String() != "persistent" || messaging.Transient.String() != "transient" || !strings.Contains(messaging.DeliveryMode(7).String(), "7") {
		t.Error("DeliveryMode strings")
	}
	if messaging.State(9).String() != "State(9)" {
		t.Error("State string")
	}
}

// A ConsumerWorker whose connection is on a hub the caller runs waits for
// the connection to break instead of draining.
func TestConsumerWorkerUserHub(t *testing.T) {
	ctx := testCtx(t)
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	runCtx, stopHub := context.WithCancel(ctx)
	ran := make(chan error)
	go func() { ran <- h.Run(runCtx) }()
	defer func() { stopHub(); <-ran }()
	b := &fakeBroker{}
	tmpl, _ := newFake(t, "fake://a", b, func(o *messaging.Options) { o.Hub = h })
	got := make(chan any, 2)
	ready := make(chan readyEvent, 2)
	w, _ := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{{Name: "q"}},
				// Acked: Run's graceful end waits for unsettled messages.
				Callbacks: []messaging.Callback{func(body any, m *messaging.Message) { got <- body; m.Ack() }}}}, nil
		},
		OnConsumeReady: func(conn *messaging.Connection, cs []*messaging.Consumer) {
			ch, _ := conn.DefaultChannel(ctx)
			ready <- readyEvent{conn, ch.(*fakeChannel), cs[0].ConsumerTags()["q"]}
		},
	})
	messaging.SetWorkerClock(w, newFakeClock().now, newFakeClock().sleep)
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	ev := <-ready
	ev.ch.deliver(ev.tag, &transport.Message{Body: []byte("1"), ContentType: "text/plain"})
	if v := <-got; v != "1" {
		t.Errorf("got %v", v)
	}
	b.lastConn().kill()
	ev = <-ready
	ev.ch.deliver(ev.tag, &transport.Message{Body: []byte("2"), ContentType: "text/plain"})
	if v := <-got; v != "2" {
		t.Errorf("got %v", v)
	}
	w.Stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
