package messaging_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// Kombu test case 60 (test_rabbitmq_example_urls) and the other URL forms
// of kombu-spec §5.1.
func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want messaging.Endpoint
	}{
		{"amqp://user%61:%61pass@ho%61st:10000/v%2fhost", messaging.Endpoint{Scheme: "amqp", Transport: "amqp",
			Hostname: "hoast", Port: 10000, UserID: "usera", Password: "apass", VirtualHost: "v/host"}},
		{"amqp://", messaging.Endpoint{Scheme: "amqp", Transport: "amqp"}},
		{"amqp://host/%2f", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "host", VirtualHost: "/"}},
		{"amqp://host//", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "host", VirtualHost: "/"}},
		{"pyamqp://guest:guest@localhost:5672//", messaging.Endpoint{Scheme: "pyamqp", Transport: "amqp",
			Hostname: "localhost", Port: 5672, UserID: "guest", Password: "guest", VirtualHost: "/"}},
		{"amqps://u:p@rabbit/vh", messaging.Endpoint{Scheme: "amqps", Transport: "amqps", Hostname: "rabbit",
			UserID: "u", Password: "p", VirtualHost: "vh", TLS: true}},
		{"redis://localhost:6379/1", messaging.Endpoint{Scheme: "redis", Transport: "redis", Hostname: "localhost",
			Port: 6379, VirtualHost: "1"}},
		{"redis://:secret@h:6380/2", messaging.Endpoint{Scheme: "redis", Transport: "redis", Hostname: "h",
			Port: 6380, Password: "secret", VirtualHost: "2"}},
		{"REDIS://User:Pw@MyHost", messaging.Endpoint{Scheme: "redis", Transport: "redis", Hostname: "myhost",
			UserID: "User", Password: "Pw"}},
		{"rediss://h:6379/0", messaging.Endpoint{Scheme: "rediss", Transport: "rediss", Hostname: "h", Port: 6379,
			VirtualHost: "0", TLS: true}},
		{"redis+socket:///tmp/redis.sock", messaging.Endpoint{Scheme: "redis+socket", Transport: "redis",
			URIPrefix: "redis", Hostname: "/tmp/redis.sock"}},
		{"redis+socket://:foo@/var/run/redis.sock?virtual_host=3", messaging.Endpoint{Scheme: "redis+socket",
			Transport: "redis", URIPrefix: "redis", Hostname: "/var/run/redis.sock", Password: "foo", VirtualHost: "3"}},
		{"sentinel://h1:26379", messaging.Endpoint{Scheme: "sentinel", Transport: "sentinel", Hostname: "h1", Port: 26379}},
		{"memory://", messaging.Endpoint{Scheme: "memory", Transport: "memory"}},
		{"memory://broker1", messaging.Endpoint{Scheme: "memory", Transport: "memory", Hostname: "broker1"}},
		{"example.com", messaging.Endpoint{Hostname: "example.com"}},
		{"example.com:5673", messaging.Endpoint{Hostname: "example.com", Port: 5673}},
		{"amqp://[::1]:5672/", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "::1", Port: 5672}},
		{"amqp://a@b@host/", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "host", UserID: "a@b"}},
		{"amqp://u:p:q@host/", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "host", UserID: "u", Password: "p:q"}},
		{"amqp://host/vh#frag", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "host", VirtualHost: "vh"}},
		{"amqp://h/%zz", messaging.Endpoint{Scheme: "amqp", Transport: "amqp", Hostname: "h", VirtualHost: "%zz"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := messaging.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.url {
				t.Errorf("String() = %q", got.String())
			}
			got = clearRaw(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseURL(%q)\n got %+v\nwant %+v", tt.url, got, tt.want)
			}
		})
	}
}

// clearRaw returns the exported fields only.
func clearRaw(e messaging.Endpoint) messaging.Endpoint {
	return messaging.Endpoint{Scheme: e.Scheme, Transport: e.Transport, URIPrefix: e.URIPrefix, Hostname: e.Hostname,
		Port: e.Port, UserID: e.UserID, Password: e.Password, VirtualHost: e.VirtualHost, TLS: e.TLS, SSL: e.SSL,
		ConnectTimeout: e.ConnectTimeout, Heartbeat: e.Heartbeat, LoginMethod: e.LoginMethod, Options: e.Options}
}

func TestParseURLQuery(t *testing.T) {
	ep, err := messaging.ParseURL("redis://h/0?ssl_cert_reqs=CERT_NONE&ssl_ca_certs=%2Fetc%2Fca.pem&" +
		"connect_timeout=1.5&heartbeat=10&login_method=AMQPLAIN&visibility_timeout=3600&empty=&plus=a+b&x=1&x=2&flag")
	if err != nil {
		t.Fatal(err)
	}
	if !ep.TLS {
		t.Error("ssl_* parameters must turn TLS on")
	}
	wantSSL := map[string]string{"ssl_cert_reqs": "CERT_NONE", "ssl_ca_certs": "/etc/ca.pem"}
	if !reflect.DeepEqual(ep.SSL, wantSSL) {
		t.Errorf("SSL = %v, want %v", ep.SSL, wantSSL)
	}
	if ep.ConnectTimeout != 1500*time.Millisecond || ep.Heartbeat != 10*time.Second {
		t.Errorf("ConnectTimeout, Heartbeat = %v, %v", ep.ConnectTimeout, ep.Heartbeat)
	}
	if ep.LoginMethod != "AMQPLAIN" {
		t.Errorf("LoginMethod = %q", ep.LoginMethod)
	}
	// Python's parse_qsl: blank values and bare keys dropped, '+' is a
	// space, the last value wins.
	wantOpts := map[string]string{"visibility_timeout": "3600", "plus": "a b", "x": "2"}
	if !reflect.DeepEqual(ep.Options, wantOpts) {
		t.Errorf("Options = %v, want %v", ep.Options, wantOpts)
	}
	ep, err = messaging.ParseURL("amqp://h/?ssl=true")
	if err != nil || !ep.TLS {
		t.Errorf("ssl=true: TLS=%v err=%v", ep.TLS, err)
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, s := range []string{"", "amqp://h:99999/", "amqp://h:port/", "amqp://h:-1/", "amqp://[::1/",
		"1amqp://h/", "amqp://h/\x00", "amqp://h/?heartbeat=abc", "amqp://h/?ssl=maybe", "a;b"} {
		_, err := messaging.ParseURL(s)
		if !errors.Is(err, messaging.ErrInvalidURL) {
			t.Errorf("ParseURL(%q) error = %v, want ErrInvalidURL", s, err)
		}
	}
	// The password never appears in an error.
	_, err := messaging.ParseURL("amqp://user:hunter2@h:99999/")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestParseURLs(t *testing.T) {
	eps, err := messaging.ParseURLs("sentinel://h1:26379;sentinel://h2:26379;")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].Hostname != "h1" || eps[1].Hostname != "h2" || eps[1].Port != 26379 {
		t.Errorf("ParseURLs = %+v", eps)
	}
	if _, err := messaging.ParseURLs(" ; "); !errors.Is(err, messaging.ErrInvalidURL) {
		t.Errorf("empty list: %v", err)
	}
}

// Kombu test cases 61-63 and the as_uri examples of kombu-spec §5.1.
func TestAsURI(t *testing.T) {
	tests := []struct {
		url, masked, full string
	}{
		{"amqp://user:pass@localhost:5672/my/vhost", "amqp://user:**@localhost:5672/my/vhost", "amqp://user:pass@localhost:5672/my/vhost"},
		{"amqp://", "amqp://guest:**@localhost:5672//", "amqp://guest:guest@localhost:5672//"},
		{"pyamqp://", "amqp://guest:**@localhost:5672//", "amqp://guest:guest@localhost:5672//"},
		{"example.com;amqp://example.com", "amqp://guest:**@example.com:5672//", "amqp://guest:guest@example.com:5672//"},
		{"redis+socket:///var/spool/x/y/z/redis.sock", "redis+socket:///var/spool/x/y/z/redis.sock", "redis+socket:///var/spool/x/y/z/redis.sock"},
		{"redis+socket://:pw@/tmp/r.sock", "redis+socket://:**@/tmp/r.sock", "redis+socket://:pw@/tmp/r.sock"},
		{"redis://user:pw@h:6379/2", "redis://user:**@h:6379/2", "redis://user:pw@h:6379/2"},
		{"redis://:pw@localhost:6379/1", "redis://:**@localhost:6379/1", "redis://:pw@localhost:6379/1"},
		{"amqps://h/", "amqps://guest:**@h:5671//", "amqps://guest:guest@h:5671//"},
		{"memory://", "memory://localhost//", "memory://localhost//"},
		{"amqp://us%40er:p%2Fw@h/v%20h", "amqp://us%40er:**@h:5672/v%20h", "amqp://us%40er:p%2Fw@h:5672/v%20h"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := messaging.NewConnection(tt.url, linked(nil))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.AsURI(false); got != tt.masked {
				t.Errorf("AsURI(false) = %q, want %q", got, tt.masked)
			}
			if got := c.String(); got != tt.masked {
				t.Errorf("String() = %q, want %q", got, tt.masked)
			}
			if got := c.AsURI(true); got != tt.full {
				t.Errorf("AsURI(true) = %q, want %q", got, tt.full)
			}
		})
	}
	// A list given as alternates (Kombu's list hostname), case 63.
	opts := linked(nil)
	opts.Alternates = []string{"amqp://example.com"}
	c, err := messaging.NewConnection("example.com", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.AsURI(false); got != "amqp://guest:**@example.com:5672//" {
		t.Errorf("list form: AsURI = %q", got)
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"amqp://user%61:%61pass@ho%61st:10000/v%2fhost", "redis+socket:///tmp/r.sock",
		"redis://h/0?ssl_cert_reqs=none&a=b", "amqp://[::1]:5672/", "example.com:1", "amqp://a@b:c@d/%", "x://%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := messaging.ParseURL(s)
		if err != nil {
			if !errors.Is(err, messaging.ErrInvalidURL) {
				t.Fatalf("error %v does not match ErrInvalidURL", err)
			}
			return
		}
		if ep.Port < 0 || ep.Port > 65535 {
			t.Fatalf("port %d out of range", ep.Port)
		}
		if ep.Password != "" && strings.Contains(s, "://") && !strings.Contains(ep.Scheme, "+") {
			// The masked form never shows the password of a parsed URL
			// unless the password also appears elsewhere.
			c, cerr := messaging.NewConnection(s, messaging.Options{Schemes: map[string]messaging.Scheme{
				ep.Transport: {New: (&fakeBroker{}).newTransport}}})
			if cerr == nil {
				uri := c.AsURI(false)
				c.Close()
				if !strings.Contains(uri, ":**@") {
					t.Fatalf("AsURI(false) = %q does not mask", uri)
				}
			}
		}
	})
}

func TestParseURLRedisCluster(t *testing.T) {
	ep, err := messaging.ParseURL("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/0?publish_wait_replicas=1")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Transport != "redis" || ep.Scheme != "redis+cluster" || ep.Hostname != "10.0.0.1:7000,10.0.0.2:6379,[::1]:7002" ||
		ep.Port != 0 || ep.Password != "s3cret" || ep.VirtualHost != "0" || ep.Options["publish_wait_replicas"] != "1" {
		t.Errorf("ParseURL = %+v", ep)
	}
	if _, err := messaging.ParseURL("redis+cluster://h:1,h:x"); err == nil {
		t.Error("a bad port in the node list: no error")
	}
}
