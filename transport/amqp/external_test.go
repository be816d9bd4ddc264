package amqp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestExternalAuth runs login_method=EXTERNAL against a private RabbitMQ
// node with a TLS listener that requires a client certificate and the
// rabbitmq_auth_mechanism_ssl plugin (user = the certificate's CN). The
// node offers EXTERNAL and PLAIN, and every config here also carries
// guest/guest, which PLAIN would accept from 127.0.0.1: a refused EXTERNAL
// login therefore shows that there is no fallback to PLAIN.
func TestExternalAuth(t *testing.T) {
	var ca *testCA
	var tlsPort int
	node := startPrivateNode(t, func(dir string) {
		ca = newTestCA(t, dir, "kombu")
		srvCert, srvKey := ca.issue(t, "localhost", true)
		tlsPort = freePort(t)
		writeFile(t, dir, "rabbitmq.extra.conf", tlsNodeConf(tlsPort, ca.File, srvCert, srvKey))
		writeFile(t, dir, "plugins", "rabbitmq_auth_mechanism_ssl\n")
	})
	user := "kombu-ext-" + randomID()
	node.rabbitmqctl(t, "add_user", user, "pw-"+randomID())
	node.rabbitmqctl(t, "set_permissions", "-p", "/", user, ".*", ".*", ".*")
	certFile, keyFile := ca.issue(t, user, false)
	strangerCert, strangerKey := ca.issue(t, "kombu-not-a-user", false)
	rogue := newTestCA(t, t.TempDir(), "rogue")
	rogueCert, rogueKey := rogue.issue(t, user, false) // the right CN from the wrong CA

	dial := func(t *testing.T, cert, key string) (transport.Conn, error) {
		t.Helper()
		tr, err := New(transport.Config{Scheme: "amqps", Hostname: "127.0.0.1", Port: tlsPort,
			UserID: "guest", Password: "guest", ConnectTimeout: 10 * time.Second,
			Options: map[string]any{"login_method": "EXTERNAL", "ssl_ca_certs": ca.File,
				"ssl_certfile": cert, "ssl_keyfile": key, "recovery": false}})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Dial(context.Background(), runHub(t))
	}

	t.Run("authenticates as the certificate's CN", func(t *testing.T) {
		c, err := dial(t, certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ch, err := c.Channel(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.DeclareQueue(context.Background(), transport.Queue{Name: uniq("ext"), AutoDelete: true}); err != nil {
			t.Fatalf("declare as %s: %v", user, err)
		}
		out := node.rabbitmqctl(t, "list_connections", "user", "auth_mechanism", "ssl")
		if !strings.Contains(out, user+"\tEXTERNAL\ttrue") {
			t.Fatalf("the broker does not list a TLS connection of %s with EXTERNAL:\n%s", user, out)
		}
	})
	t.Run("a certificate of no user is refused, without PLAIN", func(t *testing.T) {
		c, err := dial(t, strangerCert, strangerKey)
		if err == nil {
			c.Close()
			t.Fatal("EXTERNAL with the certificate of an unknown user logged in (a fallback to PLAIN as guest?)")
		}
		var be *transport.BrokerError
		if !errors.As(err, &be) || be.Code != 403 || !strings.Contains(err.Error(), "login_method=EXTERNAL refused") {
			t.Fatalf("err = %v, want a 403 naming EXTERNAL", err)
		}
		t.Logf("refused as expected: %v", err)
	})
	t.Run("a certificate of another CA is refused by TLS", func(t *testing.T) {
		c, err := dial(t, rogueCert, rogueKey)
		if err == nil {
			c.Close()
			t.Fatal("a certificate from an unknown CA was accepted")
		}
		if !transport.IsConnectionError(err) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want a connection error about the certificate", err)
		}
		t.Logf("refused as expected: %v", err)
	})
}
