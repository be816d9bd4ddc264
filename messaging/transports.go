package messaging

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/amqp"
	"github.com/kombu-go/kombu/transport/filesystem"
	"github.com/kombu-go/kombu/transport/memory"
	"github.com/kombu-go/kombu/transport/redis"
	"github.com/kombu-go/kombu/transport/sqla"
	"github.com/kombu-go/kombu/transport/sqs"
)

// TransportFactory creates a transport from its configuration, like the
// New functions of transport/memory, transport/redis and transport/amqp.
type TransportFactory func(cfg transport.Config) (transport.Transport, error)

// Scheme describes a transport reachable through a URL scheme, and the
// defaults that fill what a URL leaves out (Kombu's
// default_connection_params).
type Scheme struct {
	// New creates the transport. A nil New marks a scheme that Kombu knows
	// but this build cannot serve.
	New TransportFactory
	// DefaultHostname, DefaultPort, DefaultUserID, DefaultPassword and
	// DefaultLoginMethod are used by Connection.Info and AsURI when the URL
	// has none (amqp: localhost, 5672, guest, guest, PLAIN).
	DefaultHostname    string
	DefaultPort        int
	DefaultUserID      string
	DefaultPassword    string
	DefaultLoginMethod string
	// TLS says that the scheme always uses TLS (amqps, rediss).
	TLS bool
}

// builtinSchemes is the scheme -> transport table. It is never modified
// after initialisation; Options.Schemes extends or overrides it per
// connection.
var builtinSchemes = map[string]Scheme{
	"memory": {New: newMemory},
	"redis":  {New: newRedis, DefaultHostname: "localhost", DefaultPort: 6379},
	"rediss": {New: newRedis, DefaultHostname: "localhost", DefaultPort: 6379, TLS: true},
	// Sentinel: the redis transport reads the sentinel list from
	// Config.Alternates and master_name from the transport options.
	"sentinel": {New: newRedis, DefaultHostname: "localhost", DefaultPort: 26379},
	"amqp": {New: newAMQP, DefaultHostname: "localhost", DefaultPort: 5672,
		DefaultUserID: "guest", DefaultPassword: "guest", DefaultLoginMethod: "PLAIN"},
	"amqps": {New: newAMQP, DefaultHostname: "localhost", DefaultPort: 5671,
		DefaultUserID: "guest", DefaultPassword: "guest", DefaultLoginMethod: "PLAIN", TLS: true},
	// Kombu's filesystem transport: the folders are transport options.
	"filesystem": {New: newFilesystem},
	// Kombu's SQLAlchemy transport: sqla+postgresql://, sqla+mysql:// (the
	// database URL follows the prefix).
	"sqla":       {New: newSQLA, DefaultHostname: "127.0.0.1"},
	"sqlalchemy": {New: newSQLA, DefaultHostname: "127.0.0.1"},
	// SQS: no default host (the AWS endpoint of the region); a host and
	// port name the endpoint ("sqs://KEY:SECRET@127.0.0.1:4100").
	"sqs": {New: newSQS},
}

// The constructors of the built-in transports. memory.New and redis.New
// return their concrete types, as is Go's habit; these adapt them (a nil
// *Transport must not become a non-nil interface).
var (
	newMemory     = factory(memory.New)
	newRedis      = factory(redis.New)
	newAMQP       = factory(amqp.New)
	newFilesystem = factory(filesystem.New)
	newSQLA       = factory(sqla.New)
	newSQS        = factory(sqs.New)
)

// factory adapts a constructor that returns its concrete type, never
// letting a nil *T become a non-nil transport.Transport.
func factory[T transport.Transport](f func(transport.Config) (T, error)) TransportFactory {
	return func(cfg transport.Config) (transport.Transport, error) {
		t, err := f(cfg)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
}

// DefaultTransport is the transport of a bare host name ("example.com"),
// Kombu's default.
const DefaultTransport = "amqp"

// kombuOnly are Kombu's transport aliases that have no Go transport, so
// that the error can say so instead of "unknown".
var kombuOnly = []string{"confluentkafka", "kafka", "mongodb", "zookeeper",
	"slmq", "qpid", "consul", "etcd",
	"azurestoragequeues", "azureservicebus", "pyro", "gcpubsub"}

// lookupScheme finds the transport name in extra, then in the built-in
// table. A row of extra for a built-in name keeps the built-in defaults for
// the fields it leaves zero.
func lookupScheme(name string, extra map[string]Scheme) (Scheme, error) {
	s, builtin := builtinSchemes[name]
	if e, ok := extra[name]; ok {
		s = mergeScheme(s, e)
		builtin = true
	}
	if builtin {
		if s.New == nil {
			return s, fmt.Errorf("%w: %q is not linked into this build (known: %s)",
				ErrUnknownTransport, name, strings.Join(knownSchemes(extra), ", "))
		}
		return s, nil
	}
	known := knownSchemes(extra)
	note := ""
	if slices.Contains(kombuOnly, strings.ToLower(name)) {
		note = " (a Python Kombu transport with no Go port)"
	} else if hint := closest(name, allSchemeNames(extra)); hint != "" {
		note = fmt.Sprintf(" (did you mean %q?)", hint)
	}
	return Scheme{}, fmt.Errorf("%w: %q%s; known: %s", ErrUnknownTransport, name, note, strings.Join(known, ", "))
}

// mergeScheme overlays the non-zero fields of o on s.
func mergeScheme(s, o Scheme) Scheme {
	if o.New != nil {
		s.New = o.New
	}
	if o.DefaultHostname != "" {
		s.DefaultHostname = o.DefaultHostname
	}
	if o.DefaultPort != 0 {
		s.DefaultPort = o.DefaultPort
	}
	if o.DefaultUserID != "" {
		s.DefaultUserID = o.DefaultUserID
	}
	if o.DefaultPassword != "" {
		s.DefaultPassword = o.DefaultPassword
	}
	if o.DefaultLoginMethod != "" {
		s.DefaultLoginMethod = o.DefaultLoginMethod
	}
	s.TLS = s.TLS || o.TLS
	return s
}

// knownSchemes lists the schemes a connection can use, sorted, with the
// aliases.
func knownSchemes(extra map[string]Scheme) []string {
	set := map[string]bool{}
	for k, s := range builtinSchemes {
		if s.New != nil {
			set[k] = true
		}
	}
	for k, s := range extra {
		if s.New != nil {
			set[k] = true
		}
	}
	if set["amqp"] {
		for a := range transportAliases {
			set[a] = true
		}
	}
	if set["redis"] {
		set["redis+socket"] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// allSchemeNames lists every scheme name, linked into this build or not.
func allSchemeNames(extra map[string]Scheme) []string {
	names := slices.Collect(maps.Keys(builtinSchemes))
	names = append(names, slices.Collect(maps.Keys(extra))...)
	names = append(names, slices.Collect(maps.Keys(transportAliases))...)
	slices.Sort(names)
	return names
}

// closest returns the candidate within edit distance 2 of name, if any
// (Kombu's "Did you mean" hint).
func closest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
