package messaging_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/memory"
)

// Issue 12: a misspelt transport option in a URL is an error that names it
// and lists the valid ones (Kombu ignores it), found before any dial and
// not retried.
func TestMisspeltOptionInURL(t *testing.T) {
	for _, tc := range []struct {
		url, valid string
	}{
		// Port 1: nothing listens there; the option error comes first.
		{"redis://127.0.0.1:1/0?visibilty_timeout=3", "visibility_timeout"},
		{"memory://misspelt-" + messaging.NewUUID()[:8] + "?deadleter_queue=dlq", "deadletter_queue"},
	} {
		t.Run(strings.SplitN(tc.url, ":", 2)[0], func(t *testing.T) {
			c, err := messaging.NewConnection(tc.url, messaging.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.EnsureConnection(testCtx(t), messaging.RetryPolicy{MaxRetries: 5})
			var oe *transport.OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("EnsureConnection: %v, want a *transport.OptionError", err)
			}
			key, _, _ := strings.Cut(strings.SplitN(tc.url, "?", 2)[1], "=")
			if oe.Key != key || !slices.Contains(oe.Valid, tc.valid) {
				t.Errorf("error names %q, valid %v; want %q and %q among the valid ones", oe.Key, oe.Valid, key, tc.valid)
			}
			if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, tc.valid) {
				t.Errorf("message %q does not name %s and list %s", msg, key, tc.valid)
			}
		})
	}
}

// Kombu's connection-level keys (max_retries, interval_*) are read by the
// connection; the virtual transports check and accept them (the AMQP
// transport's recovery follows them).
func TestConnectionKeysAccepted(t *testing.T) {
	url := "memory://connkeys-" + messaging.NewUUID()[:8] + "?max_retries=2&interval_start=0&interval_step=1&interval_max=1"
	c, err := messaging.NewConnection(url, messaging.Options{
		TransportOptions: map[string]any{"connect_retries_timeout": 3, "deadletter_queue": "dlq"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	// A value the connection could not read is an error, no longer a
	// silently ignored policy.
	bad, err := messaging.NewConnection("redis://127.0.0.1:1/0?interval_start=soon", messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	var oe *transport.OptionError
	if err := bad.Connect(testCtx(t)); !errors.As(err, &oe) || oe.Key != "interval_start" {
		t.Errorf("interval_start=soon: %v", err)
	}
}

// Options.Transport takes a transport built with typed options.
func TestTypedTransport(t *testing.T) {
	ctx := testCtx(t)
	broker := "typed-" + messaging.NewUUID()[:8]
	tr, err := memory.NewWithOptions(memory.Options{Broker: broker, DeadLetterQueue: "typed.dlq"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := messaging.NewConnection("memory://"+broker, messaging.Options{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: "typed.ex", Type: transport.Direct}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: "typed.dlq"}); err != nil {
		t.Fatal(err)
	}
	m := &transport.Message{Body: []byte("lost"), ContentType: "text/plain"}
	if err := ch.Publish(ctx, m, "typed.ex", "nobody", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := ch.Get(ctx, "typed.dlq", true)
	if err != nil || string(got.Body) != "lost" {
		t.Fatalf("the typed DeadLetterQueue got %v, %v", got, err)
	}

	// Transport options next to a built transport are refused.
	for _, bad := range []struct {
		url  string
		opts map[string]any
	}{
		{"memory://" + broker + "?deadletter_queue=x", nil},
		{"memory://" + broker, map[string]any{"deadletter_queue": "x"}},
		{"memory://" + broker + ";memory://other", nil},
		{"memory://" + broker + "?ssl=1", nil},
		{"memory://" + broker + "?heartbeat=10", nil},
	} {
		if _, err := messaging.NewConnection(bad.url, messaging.Options{Transport: tr, TransportOptions: bad.opts}); err == nil {
			t.Errorf("%s %v with Options.Transport accepted", bad.url, bad.opts)
		}
	}
	if _, err := messaging.NewConnection("memory://"+broker+"?max_retries=1", messaging.Options{Transport: tr}); err != nil {
		t.Errorf("a retry key with Options.Transport: %v", err)
	}
}
