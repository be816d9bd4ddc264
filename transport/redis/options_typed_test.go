package redis

import (
	"crypto/tls"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// Issue 12: a misspelt option is an error naming it and listing the valid
// ones (Kombu ignores it).
func TestMisspeltOption(t *testing.T) {
	_, err := New(transport.Config{Options: map[string]any{"visibilty_timeout": 3}})
	var oe *transport.OptionError
	if !errors.As(err, &oe) || oe.Transport != "redis" || oe.Key != "visibilty_timeout" {
		t.Fatalf("New: %v, want an OptionError for visibilty_timeout", err)
	}
	if !slices.Contains(oe.Valid, "visibility_timeout") || !strings.Contains(err.Error(), "visibility_timeout") {
		t.Errorf("the valid options are not listed: %v", err)
	}
	// Refused options are not listed as valid.
	for _, k := range []string{"socket_keepalive_options", "min_other_sentinels", "login_method", "master_name"} {
		if slices.Contains(oe.Valid, k) {
			t.Errorf("%s is listed as valid", k)
		}
	}
}

// Issue 12: no option is accepted and then ignored: Python-only options are
// refused with the reason.
func TestRefusedOptions(t *testing.T) {
	for k, v := range map[string]any{
		"socket_keepalive_options": map[string]any{"1": 2}, "min_other_sentinels": 1,
		"login_method": "PLAIN", "master_name": "m", "sentinel_kwargs": "{}", "confirm_publish": false,
	} {
		_, err := ParseConfig(transport.Config{Options: map[string]any{k: v}})
		var oe *transport.OptionError
		if !errors.As(err, &oe) || oe.Key != k || oe.Reason == "" || oe.Reason == "unknown option" {
			t.Errorf("%s=%v: %v, want a refusal with its reason", k, v, err)
		}
	}
	// A None value is no value, as in Kombu.
	if _, err := ParseConfig(transport.Config{Options: map[string]any{"socket_keepalive_options": nil}}); err != nil {
		t.Errorf("socket_keepalive_options=None: %v", err)
	}
	if _, err := ParseConfig(transport.Config{Options: map[string]any{"confirm_publish": "true"}}); err != nil {
		t.Errorf("confirm_publish=true: %v", err)
	}
}

// The zero Options and an empty Config resolve alike, to Kombu's defaults.
func TestZeroOptionsAreKombuDefaults(t *testing.T) {
	fromCfg := mustOptions(t, transport.Config{})
	fromZero, err := Options{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	fromCfg.chanOpts.Logger, fromZero.chanOpts.Logger = nil, nil
	fromCfg.log, fromZero.log = nil, nil
	if !reflect.DeepEqual(fromCfg, fromZero) {
		t.Errorf("from an empty Config:\n%+v\nfrom Options{}:\n%+v", fromCfg, fromZero)
	}
}

// Every typed field reaches the resolved options; every Kombu key reaches
// its field.
func TestTypedOptions(t *testing.T) {
	o, err := ParseConfig(transport.Config{Scheme: "redis", Hostname: "h", Port: 7000, VirtualHost: "/3",
		Options: map[string]any{
			"ack_emulation": false, "fanout_prefix": "pfx{db}.", "fanout_patterns": "0",
			"socket_keepalive": "no", "retry_on_timeout": false, "deadletter_queue": "dlq",
			"restore_on_close": "false", "unacked_restore_throttle": 2, "brpop_timeout": 0.25,
		}})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Network: "", Addr: "h:7000", DB: 3, NoAckEmulation: true, FanoutPrefix: "pfx{db}.",
		NoFanoutPatterns: true, KeepAlive: -1, NoRetryOnTimeout: true, DeadLetterQueue: "dlq",
		NoRestoreOnClose: true, UnackedRestoreThrottle: 2, BRPOPTimeout: 250 * time.Millisecond, vhost: "/3"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("ParseConfig:\n%+v\nwant\n%+v", o, want)
	}
	r, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.ackEmulation || r.fanoutPrefix != "pfx3." || r.fanoutPatterns || r.keepAlive >= 0 || r.maxRetries != -1 ||
		r.chanOpts.DeadLetterQueue != "dlq" || !r.chanOpts.NoRestoreOnClose || r.chanOpts.VHost != "/3" ||
		r.restoreThrottle != 2 || r.brpopTimeout != 250*time.Millisecond || r.addr != "h:7000" || r.db != 3 {
		t.Errorf("resolved: %+v", r)
	}
	if d, _ := (Options{}).resolve(); d.maxRetries != 0 {
		t.Errorf("retry_on_timeout's default (true): go-redis MaxRetries %d, want 0 (its default)", d.maxRetries)
	}
	n, _ := (Options{NoFanoutPrefix: true, DB: 2}).resolve()
	if n.fanoutPrefix != "" || n.chanOpts.VHost != "/2" {
		t.Errorf("NoFanoutPrefix: %q, vhost %q", n.fanoutPrefix, n.chanOpts.VHost)
	}
}

func TestNewWithOptionsChecks(t *testing.T) {
	for _, bad := range []Options{
		{Network: "udp"}, {Network: "unix"}, {SentinelAddrs: []string{"h:26379"}}, {DB: -1},
		{BodyEncoding: "rot13"}, {QueueOrderStrategy: "random"},
	} {
		if _, err := NewWithOptions(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	tr, err := NewWithOptions(Options{Addr: "example.com:6380", TLS: &tls.Config{MinVersion: tls.VersionTLS13}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.o.tls.ServerName != "example.com" || tr.o.tls.MinVersion != tls.VersionTLS13 {
		t.Errorf("TLS: ServerName %q", tr.o.tls.ServerName)
	}
	s, err := NewWithOptions(Options{SentinelAddrs: []string{"h:26379"}, MasterName: "m"})
	if err != nil || s.Info().DefaultPort != defaultSentinelPort {
		t.Errorf("sentinel: %v, %+v", err, s)
	}
}

// Kombu's ssl dict and the ssl_* keys go through the one TLS reader.
func TestTLSDict(t *testing.T) {
	o := mustOptions(t, transport.Config{Scheme: "redis", Hostname: "h",
		Options: map[string]any{"ssl": map[string]any{"ssl_cert_reqs": 2, "ssl_check_hostname": true}}})
	if o.tls == nil || o.tls.InsecureSkipVerify || o.tls.ServerName != "h" {
		t.Errorf("ssl dict: %+v", o.tls)
	}
	_, err := ParseConfig(transport.Config{Options: map[string]any{"ssl": map[string]any{"ssl_cert_req": "none"}}})
	var oe *transport.OptionError
	if !errors.As(err, &oe) || oe.Key != "ssl_cert_req" {
		t.Errorf("misspelt key in the ssl dict: %v", err)
	}
	// With Config.TLS the keys are still checked.
	if _, err := ParseConfig(transport.Config{TLS: &tls.Config{}, Options: map[string]any{"ssl_cert_reqs": "sometimes"}}); err == nil {
		t.Error("bad ssl_cert_reqs beside Config.TLS accepted")
	}
}

// ParseConfig takes any URL query without panicking, and whatever it
// accepts, NewWithOptions accepts too: the checks of a key's value happen
// where the key is read.
func FuzzParseConfig(f *testing.F) {
	f.Add("redis", "visibility_timeout=3&priority_steps=[0,5]&fanout_prefix=x{db}")
	f.Add("rediss", "ssl_cert_reqs=CERT_REQUIRED&ssl_check_hostname=1")
	f.Add("sentinel", "master_name=m&sentinel_kwargs={\"password\":\"p\"}")
	f.Add("redis+socket", "virtual_host=2&socket_keepalive=no")
	f.Add("redis", "ssl={\"ssl_cert_reqs\":2}&visibilty_timeout=1")
	f.Fuzz(func(t *testing.T, scheme, query string) {
		opts := map[string]any{}
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			opts[k] = v
		}
		o, err := ParseConfig(transport.Config{Scheme: scheme, Hostname: "h", VirtualHost: "/1", Options: opts})
		if err != nil {
			return
		}
		if _, err := o.resolve(); err != nil {
			t.Fatalf("ParseConfig accepted %s?%s, resolve refused it: %v", scheme, query, err)
		}
	})
}
