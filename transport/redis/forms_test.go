package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// roundTrip dials cfg, then publishes and consumes through a list queue
// (BRPOP socket) and a fanout queue (PSUBSCRIBE socket), and returns the
// connection's go-redis client for inspection before closing.
func roundTrip(t *testing.T, cfg transport.Config, inspect func(*Conn)) {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t)
	c, err := tr.Dial(ctxT(t), h)
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(*Conn)
	defer func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	ctx := ctxT(t)
	cc, _ := conn.Channel(ctx)
	ch := cc.(*Channel)
	for i := 0; i < 20; i++ {
		if err := ch.Publish(ctx, textMsg(fmt.Sprint(i)), "", "formq", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	out := consumeN(t, ch, "formq", false, true)
	for i := 0; i < 20; i++ {
		if m := waitFor(t, out, "delivery"); string(m.Body) != fmt.Sprint(i) {
			t.Errorf("got %q, want %d", m.Body, i)
		}
	}
	fx := uniq("formfx")
	ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout})
	ch.BindQueue(ctx, transport.Binding{Queue: "formfq", Exchange: fx})
	fout := consumeN(t, ch, "formfq", false, true)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		h.Call(ctx, func() { n = ch.st.subscribed })
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ch.Publish(ctx, textMsg("fan"), fx, "", transport.PublishOptions{})
	if m := waitFor(t, fout, "fanout delivery"); string(m.Body) != "fan" {
		t.Errorf("fanout got %q", m.Body)
	}
	if inspect != nil {
		inspect(conn)
	}
}

// TLS: go-redis speaks TLS itself; the hub sockets go through the socket
// pair bridge.
func TestTLS(t *testing.T) {
	redisServerBin(t)
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writeCert(t, dir, "ca", ca, caKey)
	srvCert, srvKey := newLeaf(t, ca, caKey)
	writeCert(t, dir, "server", srvCert, srvKey)
	port := freePort(t)
	r := newPrivateRedis(t, false, "--tls-port", strconv.Itoa(port), "--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-key-file", filepath.Join(dir, "server.key"), "--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
		"--tls-auth-clients", "no")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	r.client = func() *goredis.Client {
		return goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1,
			TLSConfig: &tls.Config{RootCAs: pool}, Protocol: 2, DisableIdentity: true})
	}
	r.start()
	t.Cleanup(r.kill)
	url := fmt.Sprintf("rediss://127.0.0.1:%d/0", port)
	roundTrip(t, configFromURL(t, url, map[string]any{"ssl_cert_reqs": "required",
		"ssl_ca_certs": filepath.Join(dir, "ca.crt"), "ssl_check_hostname": "true"}), nil)
	// Without the CA the server is not trusted: Dial fails.
	tr, _ := New(configFromURL(t, url, map[string]any{"ssl_cert_reqs": "required"}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := tr.Dial(ctx, startHub(t)); err == nil {
		c.Close()
		t.Error("TLS without the CA: dial succeeded")
	}
}

// A unix socket (redis+socket://), with AUTH, a database and a client
// name on every connection, hub sockets included.
func TestUnixSocketAuthDB(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	r := newPrivateRedis(t, false, "--unixsocket", sock, "--unixsocketperm", "700", "--requirepass", "s3cret")
	r.start()
	t.Cleanup(r.kill)
	cfg := transport.Config{Scheme: "redis+socket", Hostname: "socket://:s3cret@" + sock,
		Options: map[string]any{"virtual_host": "5", "client_name": "kombu-go-test"}}
	roundTrip(t, cfg, func(c *Conn) {
		list, err := c.rdb.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		var hubSocks int
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if !strings.Contains(line, "name=kombu-go-test") || !strings.Contains(line, " db=5 ") {
				t.Errorf("client without the name or db: %s", line)
			}
			if strings.Contains(line, "cmd=blmove") || strings.Contains(line, "cmd=psubscribe") || strings.Contains(line, "cmd=evalsha") {
				hubSocks++
			}
		}
		if hubSocks < 2 {
			t.Errorf("hub sockets not seen in CLIENT LIST:\n%s", list)
		}
	})
	// A wrong password fails the dial.
	tr, _ := New(transport.Config{Scheme: "redis+socket", Hostname: "socket://:wrong@" + sock})
	if c, err := tr.Dial(ctxT(t), startHub(t)); err == nil {
		c.Close()
		t.Error("wrong password: dial succeeded")
	} else if !transport.IsConnectionError(err) {
		t.Errorf("wrong password: %v is not a connection error", err)
	}
}

// Sentinel: the master is found through a sentinel, and after a failover
// the hub sockets follow the new master.
func TestSentinelFailover(t *testing.T) {
	master := startPrivateRedis(t, false)
	replica := startPrivateRedis(t, false, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	waitReplicaUp(t, replica)
	sport := freePort(t)
	sdir := t.TempDir()
	conf := filepath.Join(sdir, "sentinel.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
		"sentinel monitor mymaster 127.0.0.1 %d 1\nsentinel down-after-milliseconds mymaster 1000\n"+
		"sentinel failover-timeout mymaster 5000\n", sport, sdir, filepath.Join(sdir, "s.log"), master.port)), 0o600)
	sent := &privateRedis{t: t, bin: master.bin, args: []string{conf, "--sentinel"}, port: sport, dir: sdir,
		client: func() *goredis.Client {
			return goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sport), MaxRetries: -1,
				Protocol: 2, DisableIdentity: true})
		}}
	sent.start()
	t.Cleanup(sent.kill)

	cfg := transport.Config{Scheme: "sentinel", Hostname: "127.0.0.1", Port: sport,
		Options: map[string]any{"master_name": "mymaster"}}
	cfg.Logger = testLogger(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t)
	c, err := tr.Dial(ctxT(t), h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	cc, _ := c.Channel(ctx)
	ch := cc.(*Channel)
	out := consumeN(t, ch, "sq", false, true)
	ch.Publish(ctx, textMsg("before"), "", "sq", transport.PublishOptions{})
	if m := waitFor(t, out, "delivery before failover"); string(m.Body) != "before" {
		t.Fatalf("got %q", m.Body)
	}
	// Wait until the sentinel knows the replica and is connected to it,
	// then fail over (retried while it finds no good replica yet).
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sport), Protocol: 2, DisableIdentity: true})
	defer sc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		reps, err := sc.Replicas(ctx, "mymaster").Result()
		if err == nil && len(reps) > 0 && reps[0]["flags"] == "slave" && reps[0]["master-link-status"] == "ok" {
			err = sc.Failover(ctx, "mymaster").Err()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("SENTINEL FAILOVER never accepted: %v %v", reps, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	newAddr := fmt.Sprintf("127.0.0.1:%d", replica.port)
	for {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		if err == nil && net.JoinHostPort(addr[0], addr[1]) == newAddr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failover did not happen: %v %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Wait until the old master is demoted, then push straight into the
	// new master: only a hub socket that followed the failover sees it.
	old := master.client()
	defer old.Close()
	for {
		info, _ := old.Info(ctx, "replication").Result()
		if strings.Contains(info, "role:slave") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master was never demoted:\n%s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	nm := replica.client()
	defer nm.Close()
	after := textMsg("after")
	after.DeliveryInfo = transport.DeliveryInfo{RoutingKey: "sq", DeliveryTag: "8f0c3a1e-0000-4000-8000-000000000001"}
	env, _ := encodeEnvelope(after, "base64")
	if err := nm.LPush(ctx, "sq", env).Err(); err != nil {
		t.Fatal(err)
	}
	if m := waitFor(t, out, "delivery after failover"); string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
	// go-redis follows the sentinel too: a publish lands on the new master.
	for {
		err := ch.Publish(ctx, textMsg("after2"), "", "sq2", transport.PublishOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, err := nm.LLen(ctx, "sq2").Result(); err != nil || n != 1 {
		t.Errorf("the publish after failover is not on the new master: %d %v", n, err)
	}
}

func waitReplicaUp(t *testing.T, r *privateRedis) {
	t.Helper()
	rdb := r.client()
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := rdb.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never synced:\n%s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kombu-go test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func writeCert(t *testing.T, dir, name string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
