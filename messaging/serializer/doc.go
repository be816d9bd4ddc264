// Package serializer is Kombu's serialization registry
// (kombu.serialization): it turns message bodies into bytes with a content
// type and content encoding, and back, with Kombu's names, MIME types and
// rules, so that Go and Python Kombu/Celery peers read each other's messages.
//
//	name     content type                     encoding
//	json     application/json                 utf-8    the default
//	msgpack  application/x-msgpack            binary   disabled by default
//	yaml     application/x-yaml               utf-8    disabled by default
//	pickle   application/x-python-serialize   binary   always refused (ErrPickleUnsupported)
//	raw      application/data                 binary for []byte, utf-8 for string
//	text     text/plain                       utf-8    a string sent without a serializer
//
// [Registry.Dumps] returns (content type, content encoding, body) following
// Kombu's dumps ([Registry.AppendDumps] appends the body to a buffer, in
// place for json, for callers that serialize many values into one);
// [Registry.Loads] and [Registry.LoadsInto] follow Kombu's
// loads, including the accept policy: with an [AcceptSet] (from
// [Registry.PrepareAccept]), only its types plus the trusted application/data
// and application/text are decoded (text/plain is not trusted); without one,
// every type except the disabled ones (pickle, yaml, msgpack, as after
// Kombu's disable_insecure_serializers(['json'])) is decoded.
//
// # Design
//
// Registries are values. [NewRegistry] returns a mutable registry with the
// built-ins; [Default] returns a shared registry with the same contents whose
// mutating methods return [ErrImmutable], so importing packages cannot change
// what others decode. [Registry.Clone] derives a registry you can change.
//
// Decoded values have the same shapes whatever the format: map[string]any
// (map[any]any when msgpack or yaml keys are not all strings), []any,
// string, bool, nil, int64 for integers (uint64 above MaxInt64;
// json.Number for JSON integers beyond both), float64 for other numbers.
// Text bodies decode to string and binary ones to []byte.
//
// JSON. Decoding accepts both generations of Kombu JSON. Kombu 5.3 and later
// write {"__type__": T, "__value__": V} envelopes for values with no JSON
// form; Loads converts them: datetime, date and time to time.Time (a naive
// value is taken as UTC), decimal to its exact string, uuid to the
// canonical 8-4-4-4-12 string, bytes and base64 to []byte; an unknown type
// is a decode error, as in Kombu. Kombu 5.2 and earlier wrote plain strings
// instead (ISO 8601 datetimes with "Z", decimals and UUIDs as strings), and
// those stay strings. Encoding writes no envelopes, so that Kombu 5.2
// readers are served too: a time.Time becomes an RFC 3339 string with "Z" for
// UTC (the 5.2 form; Python 3.11's datetime.fromisoformat reads it; truncate
// to microseconds, Python's resolution, if the receiver compares exactly), a
// []byte a base64 string. HTML characters are not escaped, as in Python.
//
// Differences from Kombu: pickle is refused in both directions; "text" is a
// registered name (for text/plain) and "raw" is accepted by PrepareAccept
// (for application/data); Python's json.loads reads NaN and Infinity, which
// are errors here; yaml timestamps decode to strings and !!binary to string.
//
// Modules: msgpack is github.com/vmihailenco/msgpack/v5 and yaml is
// go.yaml.in/yaml/v3. Bodies come from the network, so decoding is bounded:
// nesting stops at 10,000 levels in all three formats, yaml refuses
// excessive aliasing ("billion laughs"), a msgpack header that declares more
// bytes or items than the body holds is refused before anything is
// allocated, and a panic inside a codec becomes a [*DecodeError].
//
// # Concurrency
//
// A [Registry] is safe for concurrent use: Dumps, Loads and LoadsInto read an
// immutable snapshot without locking; Register, Unregister, Enable, Disable
// and SetDefault swap the snapshot under a mutex. An [AcceptSet] is
// immutable. The package starts no goroutines.
//
// # Errors
//
// [ErrNotInstalled] for an unknown serializer name (the message lists the
// installed ones); [*ContentDisallowedError], matching
// [ErrContentDisallowed], with Kombu's "Refusing to deserialize untrusted
// content of type json (application/json)" wording; [*DecodeError] and
// [*EncodeError], matching [ErrDecode] and [ErrEncode] and unwrapping to the
// cause; [ErrPickleUnsupported]; [ErrImmutable]; [ErrInvalidSerializer].
package serializer
