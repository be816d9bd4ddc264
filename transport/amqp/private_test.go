package amqp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/transport/transporttest"
)

// privateNode is a RabbitMQ node of the test's own, started with
// scripts/brokers.sh (KOMBU_TEST_RABBIT_CTL) in a temporary directory and
// stopped when the test ends. Tests that raise alarms or need a TLS
// listener use it, never the shared broker.
type privateNode struct {
	dir string
	url string // amqp://guest:guest@127.0.0.1:PORT//
	ctl string
}

// startPrivateNode starts a node. setup may write rabbitmq.extra.conf and
// plugins into the directory first (see scripts/brokers.sh).
func startPrivateNode(t *testing.T, setup func(dir string)) *privateNode {
	t.Helper()
	ctl := os.Getenv("KOMBU_TEST_RABBIT_CTL")
	if ctl == "" {
		transporttest.Require(t, "KOMBU_TEST_RABBIT_CTL is not set: no private RabbitMQ node can be started")
	}
	// Short: the node's socket paths live under it.
	dir, err := os.MkdirTemp("", "kombu-amqp-")
	if err != nil {
		t.Fatal(err)
	}
	n := &privateNode{dir: dir, ctl: ctl}
	if setup != nil {
		setup(dir)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ctl, "rabbit-stop", dir).CombinedOutput(); err != nil {
			t.Errorf("rabbit-stop %s: %v\n%s", dir, err, out)
			return // leave the directory for a look
		}
		os.RemoveAll(dir)
	})
	out, err := exec.Command(ctl, "rabbit-start", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("rabbit-start: %v\n%s\n(logs in %s)", err, ee.Stderr, dir)
		}
		t.Fatal(err)
	}
	n.url = strings.TrimSpace(string(out))
	return n
}

// rabbitmqctl runs rabbitmqctl against the node.
func (n *privateNode) rabbitmqctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(n.ctl, append([]string{"rabbit-ctl", n.dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tlsNodeConf is the rabbitmq.conf addition for a TLS listener on port
// that requires a client certificate from ca, with EXTERNAL (the
// certificate's CN) and PLAIN offered.
func tlsNodeConf(port int, caFile, certFile, keyFile string) string {
	return fmt.Sprintf(`listeners.ssl.default = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
auth_mechanisms.1 = EXTERNAL
auth_mechanisms.2 = PLAIN
ssl_cert_login_from = common_name
`, port, caFile, certFile, keyFile)
}
