package messaging_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// TestAMQPMisspeltOption: a misspelt AMQP option, in the URL or in
// TransportOptions, fails the connection with an error that names it and
// lists the valid ones, at once (no retry can fix it); Kombu would ignore
// it. No broker is needed: the options are read before any dial.
func TestAMQPMisspeltOption(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts map[string]any
		bad  string
	}{
		{url: "amqp://guest:guest@127.0.0.1:1//?confirm_publsh=true", bad: "confirm_publsh"},
		{url: "amqp://127.0.0.1:1//", opts: map[string]any{"hearbeat": 10}, bad: "hearbeat"},
		{url: "amqps://127.0.0.1:1//?ssl_ca_cert=/tmp/ca.pem", bad: "ssl_ca_cert"},
	} {
		conn, err := messaging.NewConnection(tc.url, messaging.Options{TransportOptions: tc.opts})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err = conn.Connect(ctx)
		cancel()
		conn.Close()
		var oe *transport.OptionError
		if !errors.As(err, &oe) || oe.Key != tc.bad || !strings.Contains(err.Error(), "valid options:") {
			t.Errorf("%s %v: err = %v, want an OptionError about %s listing the valid options", tc.url, tc.opts, err, tc.bad)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: the error took %v: a bad option must not be retried", tc.url, d)
		}
	}
}

// TestAMQPKombuOptionsAccepted: the options Kombu users pass through a
// messaging.Connection (the retry keys messaging reads too, the URL's
// login_method, heartbeat and ssl_* parameters, pyamqp's own) reach the
// AMQP transport without an unknown-option error.
func TestAMQPKombuOptionsAccepted(t *testing.T) {
	url := brokerURL(t, "KOMBU_TEST_AMQP_URL")
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	conn, err := messaging.NewConnection(url+sep+"login_method=PLAIN&heartbeat=0&connect_timeout=5&channel_max=100"+
		"&read_timeout=30&write_timeout=30&frame_max=131072",
		messaging.Options{Schemes: brokerOptions().Schemes, TransportOptions: map[string]any{
			"confirm_publish": true, "max_retries": 3, "interval_start": 0.1, "interval_step": 0.1,
			"interval_max": 1, "connect_retries_timeout": 10, "client_properties": map[string]any{"app": "test"},
			"locale": "en_US",
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := conn.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}
