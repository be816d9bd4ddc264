package messaging_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// TestExchangeBindUnsupported: the memory and Redis transports, like
// Kombu's virtual transports, have no exchange-to-exchange bindings:
// BindTo and UnbindFrom say so with transport.ErrUnsupported.
func TestExchangeBindUnsupported(t *testing.T) {
	urls := map[string]string{"memory": "memory://"}
	if u := brokerURLOrEmpty("KOMBU_TEST_REDIS_URL"); u != "" {
		urls["redis"] = u
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			conn, err := messaging.NewConnection(url, brokerOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ch, err := conn.DefaultChannel(ctx)
			if err != nil {
				t.Fatal(err)
			}
			a, b := messaging.NewExchange("ebind-a", messaging.Direct), messaging.NewExchange("ebind-b", messaging.Direct)
			if err := a.BindTo(ctx, ch, b, "k", nil); !errors.Is(err, transport.ErrUnsupported) {
				t.Errorf("BindTo: err = %v, want transport.ErrUnsupported", err)
			}
			if err := a.UnbindFrom(ctx, ch, b, "k", nil); !errors.Is(err, transport.ErrUnsupported) {
				t.Errorf("UnbindFrom: err = %v, want transport.ErrUnsupported", err)
			}
		})
	}
}

// pyExchangeBind is Python Kombu's side of TestExchangeBindInterop:
// "bind DEST SOURCE" binds with Exchange.bind_to, "publish SOURCE" publishes
// {"from": "python"} to SOURCE with routing key k.
const pyExchangeBind = `
import sys, kombu
url, mode = sys.argv[1], sys.argv[2]
with kombu.Connection(url) as c:
    ch = c.channel()
    if mode == "bind":
        dest = kombu.Exchange(sys.argv[3], "direct", durable=False)(ch)
        src = kombu.Exchange(sys.argv[4], "direct", durable=False)(ch)
        dest.declare(); src.declare()
        dest.bind_to(src, routing_key="k")
    else:
        c.Producer(ch).publish({"from": "python"}, exchange=sys.argv[3], routing_key="k", serializer="json")
print("ok")
`

// TestExchangeBindInterop: Python Kombu binds exchange A to B and a Go
// publish to B reaches a queue bound to A; Go binds A to B (BindTo) and a
// Python publish to B reaches it; after UnbindFrom, nothing does.
func TestExchangeBindInterop(t *testing.T) {
	url := brokerURL(t, "KOMBU_TEST_AMQP_URL")
	py := celeryPython(t)
	conn, err := messaging.NewConnection(url, messaging.Options{Schemes: brokerOptions().Schemes,
		TransportOptions: map[string]any{"confirm_publish": true}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	python := func(args ...string) {
		t.Helper()
		out, err := exec.CommandContext(ctx, py, append([]string{"-c", pyExchangeBind, url}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("python %v: %v\n%s", args, err, out)
		}
	}
	prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		t.Fatal(err)
	}
	// setup returns exchanges A (destination) and B (source), and a queue
	// bound to A; all are deleted at the end.
	setup := func(t *testing.T) (a, b messaging.Exchange, q messaging.Queue) {
		id := messaging.NewUUID()[:8]
		a = messaging.Exchange{Name: "kombu-go-ebind-a-" + id, Type: messaging.Direct}
		b = messaging.Exchange{Name: "kombu-go-ebind-b-" + id, Type: messaging.Direct}
		q = messaging.Queue{Name: "kombu-go-ebind-q-" + id, Exchange: a, RoutingKey: "k"}
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			q.Delete(cctx, ch, messaging.DeleteOptions{})
			a.Delete(cctx, ch, messaging.DeleteOptions{})
			b.Delete(cctx, ch, messaging.DeleteOptions{})
		})
		for _, ex := range []messaging.Exchange{a, b} {
			if err := ex.Declare(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := q.Declare(ctx, ch); err != nil {
			t.Fatal(err)
		}
		return a, b, q
	}
	get := func(t *testing.T, q messaging.Queue) (string, bool) {
		t.Helper()
		m, err := ch.Get(ctx, q.Name, true)
		if errors.Is(err, transport.ErrEmpty) {
			return "", false
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(m.Body), " ", ""), true // Python's JSON has spaces
	}
	waitGet := func(t *testing.T, q messaging.Queue) string {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if body, ok := get(t, q); ok {
				return body
			}
		}
		t.Fatalf("nothing reached queue %s through the exchange binding", q.Name)
		return ""
	}

	t.Run("python binds, go publishes", func(t *testing.T) {
		a, b, q := setup(t)
		python("bind", a.Name, b.Name)
		if err := prod.Publish(ctx, map[string]any{"from": "go"}, messaging.PublishOptions{Exchange: &b, RoutingKey: "k"}); err != nil {
			t.Fatal(err)
		}
		if body := waitGet(t, q); body != `{"from":"go"}` {
			t.Errorf("body %q", body)
		}
		// Go removes Python's binding: the next publish is confirmed (routed
		// by B to nothing) and reaches nobody.
		if err := a.UnbindFrom(ctx, ch, b, "k", nil); err != nil {
			t.Fatal(err)
		}
		if err := prod.Publish(ctx, map[string]any{"from": "go"}, messaging.PublishOptions{Exchange: &b, RoutingKey: "k"}); err != nil {
			t.Fatal(err)
		}
		if body, ok := get(t, q); ok {
			t.Errorf("after UnbindFrom, %q still reached the queue", body)
		}
	})
	t.Run("go binds, python publishes", func(t *testing.T) {
		a, b, q := setup(t)
		if err := a.BindTo(ctx, ch, b, "k", nil); err != nil {
			t.Fatal(err)
		}
		python("publish", b.Name)
		if body := waitGet(t, q); body != `{"from":"python"}` {
			t.Errorf("body %q", body)
		}
		// A binding to a missing exchange is the broker's 404.
		ghost := messaging.Exchange{Name: b.Name + "-missing", Type: messaging.Direct}
		if err := a.BindTo(ctx, ch, ghost, "k", nil); !errors.Is(err, transport.ErrNotFound) {
			t.Errorf("BindTo a missing exchange: err = %v, want 404", err)
		}
	})
}

// brokerURLOrEmpty returns the URL in env, or "" when it is unset.
func brokerURLOrEmpty(env string) string { return os.Getenv(env) }
