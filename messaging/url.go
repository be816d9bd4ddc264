package messaging

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Endpoint is one broker address: what one URL of a connection string says,
// parsed the way Kombu parses it (kombu.utils.url.parse_url). A connection
// string may hold several URLs separated by ';' (see [ParseURLs]); each
// becomes an Endpoint, and the Connection fails over between them.
//
// Fields hold what the URL says; the transport's defaults (port 5672, user
// guest ...) fill the gaps later, in [Connection.Info].
type Endpoint struct {
	// Scheme is the URL scheme, lowercased, as written ("pyamqp",
	// "redis+socket"). It is empty for a bare host name such as
	// "example.com", which uses the connection's default transport.
	Scheme string
	// Transport names the transport, with Kombu's aliases resolved:
	// "pyamqp" is "amqp"; for a prefixed scheme such as "redis+socket" it
	// is the part before '+'. Empty for a bare host name.
	Transport string
	// URIPrefix is the part of a prefixed scheme before '+' ("redis" for
	// "redis+socket://"), as Kombu's uri_prefix.
	URIPrefix string
	// Hostname is the percent-decoded, lowercased host ("" when absent).
	// For a unix-socket URL ("redis+socket:///tmp/redis.sock") it is the
	// socket path.
	Hostname string
	// Port is the URL's port, 0 when absent.
	Port int
	// UserID and Password are the percent-decoded credentials.
	UserID   string
	Password string
	// VirtualHost is the percent-decoded path without its first '/'
	// ("amqp://h/%2f" gives "/", "redis://h/1" gives "1"); empty when the
	// URL has no path. A query parameter virtual_host fills it when the
	// path is empty.
	VirtualHost string
	// TLS is set by a TLS scheme (amqps, rediss) or the query ssl=true.
	TLS bool
	// SSL holds the ssl_* query parameters (ssl_cert_reqs, ssl_ca_certs,
	// ssl_certfile, ssl_keyfile, ssl_check_hostname ...), grouped as Kombu
	// groups them into its ssl dict. They also turn TLS on.
	SSL map[string]string
	// ConnectTimeout and Heartbeat come from the query parameters
	// connect_timeout and heartbeat (seconds, may be fractional); 0 when
	// absent.
	ConnectTimeout time.Duration
	Heartbeat      time.Duration
	// LoginMethod comes from the query parameter login_method.
	LoginMethod string
	// Options holds every other query parameter; they become transport
	// options.
	Options map[string]string

	raw string
	// prefixed is, for a prefixed scheme, the URL after "prefix+" (Kombu's
	// hostname in that case, e.g. "socket:///tmp/redis.sock").
	prefixed string
}

// String returns the URL as it was given.
func (e Endpoint) String() string { return e.raw }

// transportAliases are Kombu's scheme aliases that resolve to another
// transport name (Connection.info's resolve_aliases).
var transportAliases = map[string]string{"pyamqp": "amqp", "librabbitmq": "amqp"}

// ParseURLs splits a connection string on ';' and parses each part with
// [ParseURL], as Kombu does for hostname="url1;url2". The first endpoint is
// the one to connect to; the others are its alternates. Empty parts are
// skipped.
func ParseURLs(s string) ([]Endpoint, error) {
	var eps []Endpoint
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		ep, err := ParseURL(part)
		if err != nil {
			return nil, err
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("%w: %q holds no URL", ErrInvalidURL, s)
	}
	return eps, nil
}

// ParseURL parses one broker URL the way Kombu does:
//
//   - "scheme://user:pass@host:port/vhost?query": every part is
//     percent-decoded; the path loses its first '/' and becomes the virtual
//     host ("amqp://h/%2f" is vhost "/", "amqp://h//" too).
//   - "prefix+scheme://rest" (e.g. "redis+socket:///tmp/redis.sock"): the
//     transport is the prefix and rest is parsed as a URL of its own; the
//     host name is then the socket path.
//   - a bare "host" or "host:port" (no "://"): a host of the default
//     transport.
//   - query parameters: ssl_* keys are grouped into SSL; ssl,
//     connect_timeout, heartbeat, login_method and virtual_host set the
//     fields of the same name; the rest become Options (transport options).
//
// The string must not contain ';' (see [ParseURLs]). Errors match
// [ErrInvalidURL].
func ParseURL(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Endpoint{}, fmt.Errorf("%w: empty URL", ErrInvalidURL)
	}
	if strings.ContainsRune(s, ';') {
		return Endpoint{}, fmt.Errorf("%w: %q: use ParseURLs for ';'-separated alternates", ErrInvalidURL, redactURL(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return Endpoint{}, fmt.Errorf("%w: control character in URL", ErrInvalidURL)
		}
	}
	i := strings.Index(s, "://")
	if i < 0 {
		ep, err := parseNetloc(s)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%w: %q: %v", ErrInvalidURL, redactURL(s), err)
		}
		ep.raw = s
		return ep, nil
	}
	scheme := strings.ToLower(s[:i])
	if !validScheme(scheme) {
		return Endpoint{}, fmt.Errorf("%w: %q: bad scheme %q", ErrInvalidURL, redactURL(s), s[:i])
	}
	var ep Endpoint
	var err error
	if p := strings.IndexByte(scheme, '+'); p >= 0 {
		// Kombu: transport, hostname = url.split('+', 1); the hostname
		// stays a URL that the transport parses itself.
		rest := s[p+1:]
		j := strings.Index(rest, "://")
		inner := strings.ToLower(rest[:j])
		if inner == "cluster" {
			ep, err = parseClusterParts(rest[j+3:])
		} else {
			ep, err = parseParts(inner, rest[j+3:])
		}
		if err == nil {
			if ep.Hostname == "" && ep.VirtualHost != "" {
				// socket:///path: the path names the socket.
				ep.Hostname = "/" + ep.VirtualHost
				ep.VirtualHost = ""
				if v, ok := ep.Options["virtual_host"]; ok {
					ep.VirtualHost = v
					delete(ep.Options, "virtual_host")
					if len(ep.Options) == 0 {
						ep.Options = nil
					}
				}
			}
			ep.URIPrefix = scheme[:p]
			ep.Transport = scheme[:p]
			ep.prefixed = rest
		}
	} else {
		ep, err = parseParts(scheme, s[i+3:])
		ep.Transport = scheme
		if a, ok := transportAliases[scheme]; ok {
			ep.Transport = a
		}
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("%w: %q: %v", ErrInvalidURL, redactURL(s), err)
	}
	ep.Scheme = scheme
	ep.raw = s
	return ep, nil
}

// validScheme reports a scheme of RFC 3986's alphabet starting with a letter.
func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parseParts splits what follows "scheme://" as Python's urlsplit does for
// "http://"+rest: netloc up to the first '/', '?' or '#'; the path; the
// query; the fragment (ignored).
func parseParts(scheme, rest string) (Endpoint, error) {
	netloc, tail := rest, ""
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		netloc, tail = rest[:j], rest[j:]
	}
	if j := strings.IndexByte(tail, '#'); j >= 0 {
		tail = tail[:j]
	}
	path, query := tail, ""
	if j := strings.IndexByte(tail, '?'); j >= 0 {
		path, query = tail[:j], tail[j+1:]
	}
	ep, err := parseNetloc(netloc)
	if err != nil {
		return Endpoint{}, err
	}
	path = strings.TrimPrefix(path, "/")
	ep.VirtualHost = unquote(path)
	switch scheme {
	case "amqps", "rediss":
		ep.TLS = true
	}
	if err := ep.applyQuery(query); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}

// parseClusterParts parses what follows "redis+cluster://": a netloc
// whose hosts are a comma-separated list of host:port seed nodes
// ("[user[:password]@]h1:p1,h2:p2"), then the path and query as for any
// URL. Hostname keeps the list as given (each part checked here); Port is
// 0.
func parseClusterParts(rest string) (Endpoint, error) {
	netloc := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		netloc = rest[:j]
	}
	userinfo, hosts := "", netloc
	if at := strings.LastIndexByte(netloc, '@'); at >= 0 {
		userinfo, hosts = netloc[:at+1], netloc[at+1:]
	}
	var seeds []string
	for h := range strings.SplitSeq(hosts, ",") {
		one, err := parseNetloc(h)
		if err != nil {
			return Endpoint{}, err
		}
		if one.Hostname == "" {
			return Endpoint{}, fmt.Errorf("empty host in cluster node list %q", hosts)
		}
		port := one.Port
		if port == 0 {
			port = 6379
		}
		seeds = append(seeds, net.JoinHostPort(one.Hostname, strconv.Itoa(port)))
	}
	first, _, _ := strings.Cut(hosts, ",")
	ep, err := parseParts("redis", userinfo+first+rest[len(netloc):])
	if err != nil {
		return Endpoint{}, err
	}
	ep.Hostname, ep.Port = strings.Join(seeds, ","), 0
	return ep, nil
}

// parseNetloc parses "[user[:password]@]host[:port]" as Python's urlsplit
// does: the userinfo ends at the last '@', the password after the first ':'
// of the userinfo, and an IPv6 host sits in brackets.
func parseNetloc(netloc string) (Endpoint, error) {
	var ep Endpoint
	hostinfo := netloc
	if at := strings.LastIndexByte(netloc, '@'); at >= 0 {
		userinfo := netloc[:at]
		hostinfo = netloc[at+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		ep.UserID, ep.Password = unquote(user), unquote(pass)
	}
	host, port := hostinfo, ""
	if strings.HasPrefix(hostinfo, "[") {
		end := strings.IndexByte(hostinfo, ']')
		if end < 0 {
			return Endpoint{}, fmt.Errorf("invalid IPv6 host %q", hostinfo)
		}
		host, port = hostinfo[1:end], hostinfo[end+1:]
		if port != "" {
			if port[0] != ':' {
				return Endpoint{}, fmt.Errorf("invalid text after IPv6 host %q", hostinfo)
			}
			port = port[1:]
		}
	} else {
		if strings.ContainsAny(hostinfo, "[]") {
			return Endpoint{}, fmt.Errorf("invalid host %q", hostinfo)
		}
		host, port, _ = strings.Cut(hostinfo, ":")
	}
	ep.Hostname = strings.ToLower(unquote(host))
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || port[0] == '+' || port[0] == '-' {
			return Endpoint{}, fmt.Errorf("port %q could not be cast to an integer", port)
		}
		if n < 0 || n > 65535 {
			return Endpoint{}, fmt.Errorf("port %d out of range 0-65535", n)
		}
		ep.Port = n
	}
	return ep, nil
}

// applyQuery parses the query as Python's parse_qsl (blank values dropped,
// '+' is a space, the last value of a key wins) and sorts the parameters
// into the Endpoint's fields.
func (ep *Endpoint) applyQuery(query string) error {
	for pair := range strings.SplitSeq(query, "&") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			continue
		}
		k = unquote(strings.ReplaceAll(k, "+", " "))
		v = unquote(strings.ReplaceAll(v, "+", " "))
		if v == "" {
			continue
		}
		switch {
		case strings.HasPrefix(k, "ssl_"):
			if ep.SSL == nil {
				ep.SSL = map[string]string{}
			}
			ep.SSL[k] = v
			ep.TLS = true
		case k == "ssl":
			b, err := parseBool(v)
			if err != nil {
				return fmt.Errorf("query ssl=%q: %v", v, err)
			}
			ep.TLS = ep.TLS || b
		case k == "connect_timeout" || k == "heartbeat":
			d, err := parseSeconds(v)
			if err != nil {
				return fmt.Errorf("query %s=%q: %v", k, v, err)
			}
			if k == "heartbeat" {
				ep.Heartbeat = d
			} else {
				ep.ConnectTimeout = d
			}
		case k == "login_method":
			ep.LoginMethod = v
		case k == "virtual_host" && ep.VirtualHost == "":
			ep.VirtualHost = v
		default:
			if ep.Options == nil {
				ep.Options = map[string]string{}
			}
			ep.Options[k] = v
		}
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

// parseSeconds reads Kombu's float seconds.
func parseSeconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e9 || f != f {
		return 0, fmt.Errorf("not a number of seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unquote is Python's urllib.parse.unquote: %XX sequences become bytes, a
// '%' not followed by two hex digits stays as it is, and bytes that are not
// valid UTF-8 become U+FFFD.
func unquote(s string) string {
	if !strings.ContainsRune(s, '%') {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(b)
}

// quote is Python's urllib.parse.quote: letters, digits and "_.-~" stay,
// as do the bytes in safe; everything else becomes %XX (upper-case hex) of
// its UTF-8 bytes.
func quote(s, safe string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-' || c == '~' || (c < utf8.RuneSelf && strings.IndexByte(safe, c) >= 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// redactURL masks the password of a URL for error messages, as Kombu's
// maybe_sanitize_url does ("amqp://user:**@host//").
func redactURL(s string) string {
	return sanitizeURL(s, "**")
}

// sanitizeURL replaces the password in "scheme://user:password@..." with
// mask. Strings without a password are returned unchanged.
func sanitizeURL(s, mask string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	netloc := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		netloc = rest[:j]
	}
	at := strings.LastIndexByte(netloc, '@')
	if at < 0 {
		return s
	}
	colon := strings.IndexByte(netloc[:at], ':')
	if colon < 0 {
		return s
	}
	return s[:i+3] + netloc[:colon+1] + mask + rest[at:]
}
