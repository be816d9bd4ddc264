package messaging

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// ConnectionInfo is Kombu's Connection.info(): the parameters of the
// current URL with the transport's defaults filling the gaps.
type ConnectionInfo struct {
	// Hostname is the host (for a prefixed scheme, "prefix+rest" as in
	// Kombu, e.g. "redis+socket:///tmp/redis.sock").
	Hostname    string
	UserID      string
	Password    string
	VirtualHost string
	Port        int
	// SSL reports whether TLS is on.
	SSL bool
	// Transport is the transport name with aliases resolved (pyamqp is
	// amqp; amqps and rediss stay as they are).
	Transport        string
	ConnectTimeout   time.Duration
	TransportOptions map[string]any
	LoginMethod      string
	URIPrefix        string
	Heartbeat        time.Duration
	FailoverStrategy string
	// Alternates are all the URLs of a failover list, the current one
	// included; nil with a single URL.
	Alternates []string
}

// Info returns the parameters of the current URL, with the transport's
// defaults for what it leaves out (amqp: guest/guest@localhost:5672, vhost
// "/", login method PLAIN). The password is included. Safe to call from a
// hub callback.
func (c *Connection) Info() ConnectionInfo {
	c.mu.Lock()
	ep := c.eps[c.cur]
	c.mu.Unlock()
	name := c.transportName(ep)
	sc, _ := lookupScheme(name, c.opts.Schemes)
	info := ConnectionInfo{
		Hostname:         ep.Hostname,
		UserID:           ep.UserID,
		Password:         ep.Password,
		VirtualHost:      ep.VirtualHost,
		Port:             ep.Port,
		SSL:              ep.TLS || sc.TLS || c.opts.TLS != nil,
		Transport:        name,
		ConnectTimeout:   c.opts.ConnectTimeout,
		TransportOptions: maps.Clone(c.opts.TransportOptions),
		LoginMethod:      ep.LoginMethod,
		URIPrefix:        ep.URIPrefix,
		Heartbeat:        c.opts.Heartbeat,
		FailoverStrategy: c.stratNm,
		Alternates:       slices.Clone(c.alts),
	}
	if ep.ConnectTimeout > 0 {
		info.ConnectTimeout = ep.ConnectTimeout
	}
	if ep.Heartbeat > 0 {
		info.Heartbeat = ep.Heartbeat
	}
	for k, v := range ep.Options {
		if info.TransportOptions == nil {
			info.TransportOptions = map[string]any{}
		}
		info.TransportOptions[k] = v
	}
	if info.UserID == "" && info.Password == "" {
		info.UserID, info.Password = c.opts.UserID, c.opts.Password
	}
	if info.Hostname == "" {
		info.Hostname = sc.DefaultHostname
	}
	if ep.URIPrefix != "" {
		info.Hostname = ep.URIPrefix + "+" + ep.prefixed
	}
	if info.UserID == "" {
		info.UserID = sc.DefaultUserID
	}
	if info.Password == "" {
		info.Password = sc.DefaultPassword
	}
	if info.VirtualHost == "" {
		info.VirtualHost = "/"
	}
	if info.Port == 0 {
		info.Port = sc.DefaultPort
	}
	if info.LoginMethod == "" {
		info.LoginMethod = sc.DefaultLoginMethod
	}
	return info
}

// AsURI returns the current URL rebuilt from Info (Kombu's as_uri):
// "scheme://user:password@host:port/vhost", with the password replaced by
// "**" unless includePassword. The virtual host "/" gives "//", so that
// "amqp://" reads back as "amqp://guest:**@localhost:5672//". A prefixed
// URL ("redis+socket:///tmp/redis.sock") is returned as given, its password
// masked. Safe to call from a hub callback.
func (c *Connection) AsURI(includePassword bool) string {
	const mask = "**"
	c.mu.Lock()
	ep := c.eps[c.cur]
	c.mu.Unlock()
	if ep.URIPrefix != "" {
		s := ep.URIPrefix + "+" + ep.prefixed
		if !includePassword {
			s = sanitizeURL(s, mask)
		}
		return s
	}
	info := c.Info()
	host := ep.Hostname
	if host == "" {
		host = "localhost"
	}
	var b strings.Builder
	b.WriteString(info.Transport)
	b.WriteString("://")
	if info.UserID != "" || info.Password != "" {
		b.WriteString(quote(info.UserID, ""))
		if info.Password != "" {
			b.WriteByte(':')
			if includePassword {
				b.WriteString(quote(info.Password, ""))
			} else {
				b.WriteString(mask)
			}
		}
		b.WriteByte('@')
	}
	if strings.Contains(host, ":") { // IPv6
		b.WriteString("[" + host + "]")
	} else {
		b.WriteString(quote(host, ""))
	}
	if info.Port != 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(info.Port))
	}
	b.WriteByte('/')
	b.WriteString(quote(info.VirtualHost, "/"))
	return b.String()
}

// String returns AsURI(false): the URL with the password masked.
func (c *Connection) String() string { return c.AsURI(false) }

// Clone returns a new, unconnected Connection with the same URLs, current
// URL and options (Kombu's clone). It shares the caller's hub if one was
// given in Options; otherwise it will create its own.
func (c *Connection) Clone() *Connection {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	raws := make([]string, len(c.eps))
	for i, ep := range c.eps {
		raws[i] = ep.raw
	}
	n := buildConnection(slices.Clone(c.eps), raws, c.opts)
	n.clk = c.clk
	if cur != 0 && n.cycle != nil {
		// Advance the clone's cycle to the same place.
		for i := 0; i < len(c.eps) && n.cur != cur; i++ {
			n.cur = n.cycle()
		}
		n.cur = cur
	}
	return n
}

// TransportInfo describes the current URL's transport (creating the
// transport object if needed; nothing dials).
func (c *Connection) TransportInfo() (transport.Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return transport.Info{}, ErrClosed
	}
	tr, _, err := c.transportLocked()
	if err != nil {
		return transport.Info{}, err
	}
	return tr.Info(), nil
}

// SupportsExchangeType reports whether the current transport routes
// exchanges of type kind (Kombu's supports_exchange_type).
func (c *Connection) SupportsExchangeType(kind string) bool {
	info, err := c.TransportInfo()
	return err == nil && slices.Contains(info.ExchangeTypes, kind)
}
