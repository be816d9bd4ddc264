package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pyRead takes one message from a queue with Python Kombu and prints its
// decoded body as "key=type:repr" lines, sorted, so that the types Python
// sees are checked, not only the values. Kombu reads transport options
// from its argument, not from the URL: the Redis key prefix is passed on
// its own.
const pyRead = `
import sys
from kombu import Connection, Queue
url, name, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
opts = {"global_keyprefix": prefix} if prefix else {}
with Connection(url, transport_options=opts) as c:
    m = Queue(name, no_declare=True, channel=c.default_channel).get(no_ack=True, accept=["msgpack", "yaml", "json"])
    if m is None:
        sys.exit("no message in " + name)
    body = m.decode()
    for k in sorted(body):
        v = body[k]
        print("%s=%s:%r" % (k, type(v).__name__, v))
`

// TestPythonReadsNumbers: publish --serializer msgpack|yaml sends numbers
// as numbers; Python Kombu reads ints and floats, exact.
func TestPythonReadsNumbers(t *testing.T) {
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" {
		if os.Getenv("KOMBU_REQUIRE_BROKERS") == "1" {
			t.Fatal("KOMBU_TEST_PYTHON is unset and KOMBU_REQUIRE_BROKERS=1")
		}
		t.Skip("no Python Kombu: KOMBU_TEST_PYTHON is unset (./scripts/test.sh sets it)")
	}
	if out, err := exec.Command(py, "-c", "import msgpack, yaml").CombinedOutput(); err != nil {
		if os.Getenv("KOMBU_REQUIRE_BROKERS") == "1" {
			t.Fatalf("Python lacks msgpack or yaml: %s", out)
		}
		t.Skipf("Python lacks msgpack or yaml (apt-get install python3-msgpack python3-yaml): %s", out)
	}
	body := `{"int": 42, "neg": -7, "big": 9007199254740993, "float": 1.5, "text": "x", "list": [1, 2.5]}`
	want := strings.Join([]string{
		"big=int:9007199254740993", "float=float:1.5", "int=int:42",
		"list=list:[1, 2.5]", "neg=int:-7", "text=str:'x'"}, "\n")
	for _, name := range []string{"redis", "amqp"} {
		t.Run(name, func(t *testing.T) {
			var url, pyURL, prefix, queue string
			switch name {
			case "redis":
				rt := newRedisTest(t)
				url, pyURL, prefix, queue = rt.url, os.Getenv("KOMBU_TEST_REDIS_URL"), rt.prefix, "numbers"
			case "amqp":
				at := newAMQPTest(t)
				url, pyURL, queue = at.url, at.url, at.queue("numbers")
			}
			for _, ser := range []string{"msgpack", "yaml"} {
				mustRun(t, nil, "publish", "--url", url, "--declare-queue", queue, "--routing-key", queue, "--serializer", ser, body)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				out, err := exec.CommandContext(ctx, py, "-c", pyRead, pyURL, queue, prefix).CombinedOutput()
				cancel()
				if err != nil {
					t.Fatalf("Python Kombu (%s): %v\n%s", ser, err, out)
				}
				if got := strings.TrimSpace(string(out)); got != want {
					t.Errorf("%s: Python read\n%s\nwant\n%s", ser, got, want)
				}
			}
		})
	}
}
