package serializer

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Content types and encodings, exactly as Kombu writes them in the
// content_type and content_encoding message properties.
const (
	ContentTypeJSON    = "application/json"               // json, content encoding utf-8
	ContentTypeMsgpack = "application/x-msgpack"          // msgpack, binary
	ContentTypeYAML    = "application/x-yaml"             // yaml, utf-8
	ContentTypePickle  = "application/x-python-serialize" // pickle, binary (refused)
	ContentTypeData    = "application/data"               // raw bytes or text; trusted
	ContentTypeAppText = "application/text"               // trusted, with ContentTypeData
	ContentTypeText    = "text/plain"                     // a str body sent without a serializer; not trusted

	EncodingUTF8   = "utf-8"
	EncodingBinary = "binary"
)

// Serializer is one named serialization method, as registered with Kombu's
// serialization.register. Its functions must be safe for concurrent use.
type Serializer struct {
	// Name is what producers pass to Dumps ("json"). Required; "raw" is
	// reserved.
	Name string
	// ContentType is the MIME type sent with the body. Required.
	ContentType string
	// ContentEncoding is sent with the body. Default: "utf-8" (Kombu's).
	ContentEncoding string
	// Encode serializes a value; the returned slice belongs to the caller.
	// Nil registers a decoder only.
	Encode func(v any) ([]byte, error)
	// AppendEncode, optional, is Encode appending to dst (which it
	// returns, extended, as append does). [Registry.AppendDumps] uses it;
	// without it, Encode's result is copied. Only with Encode.
	AppendEncode func(dst []byte, v any) ([]byte, error)
	// Decode deserializes a non-empty body into a generic value. Nil
	// registers an encoder only: Loads then treats the content type like an
	// unknown one and returns text or bytes by content encoding.
	Decode func(data []byte) (any, error)
	// DecodeInto deserializes a non-empty body into dst, a non-nil pointer.
	// Optional, and only with Decode; without it, LoadsInto can fill only an
	// *any.
	DecodeInto func(data []byte, dst any) error
}

// AcceptSet is a set of content types a consumer accepts (Kombu's prepared
// accept list). Build one with [Registry.PrepareAccept] or [NewAcceptSet].
// A nil *AcceptSet means "no accept list": the registry's default policy,
// which refuses only its disabled content types. An empty, non-nil set
// accepts only the trusted types (application/data, application/text).
//
// An AcceptSet is immutable, and safe for concurrent use.
type AcceptSet struct {
	types map[string]struct{}
}

// NewAcceptSet returns the set of the given content types, taken literally
// (no name lookup).
func NewAcceptSet(contentTypes ...string) *AcceptSet {
	a := &AcceptSet{types: make(map[string]struct{}, len(contentTypes))}
	for _, ct := range contentTypes {
		a.types[ct] = struct{}{}
	}
	return a
}

// Contains reports whether contentType is in the set. A nil set contains
// nothing.
func (a *AcceptSet) Contains(contentType string) bool {
	if a == nil {
		return false
	}
	_, ok := a.types[contentType]
	return ok
}

// ContentTypes returns the set's members, sorted.
func (a *AcceptSet) ContentTypes() []string {
	if a == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(a.types))
}

// trusted are the content types every accept set admits (Kombu's
// TRUSTED_CONTENT). text/plain is not one of them.
func trusted(ct string) bool { return ct == ContentTypeData || ct == ContentTypeAppText }

// table is one immutable snapshot of a registry; writers replace it whole.
type table struct {
	byName     map[string]*Serializer // name -> serializer
	decoders   map[string]*Serializer // content type -> serializer with Decode
	typeToName map[string]string
	disabled   map[string]struct{} // content types refused when accept is nil
	defaultSer string
}

func (t *table) clone() *table {
	return &table{
		byName:     maps.Clone(t.byName),
		decoders:   maps.Clone(t.decoders),
		typeToName: maps.Clone(t.typeToName),
		disabled:   maps.Clone(t.disabled),
		defaultSer: t.defaultSer,
	}
}

func (t *table) nameToType(name string) (string, bool) {
	if s, ok := t.byName[name]; ok {
		return s.ContentType, true
	}
	return "", false
}

// Registry is Kombu's serializer registry (kombu.serialization): named
// serializers, the default one, and the disabled content types. It is a
// value: make one with [NewRegistry], pass it where it is needed, or use the
// immutable [Default].
//
// Safe for concurrent use: Dumps and Loads read an immutable snapshot
// without locking; mutating methods replace the snapshot under a mutex.
//
// The zero value is an empty registry: no serializers, no default.
type Registry struct {
	mu        sync.Mutex // serialises writers; readers load tab
	tab       atomic.Pointer[table]
	immutable bool
}

var defaultRegistry = func() *Registry {
	r := NewRegistry()
	r.immutable = true
	return r
}()

// Default returns the shared registry that [NewRegistry] would build. It is
// immutable: its mutating methods return [ErrImmutable]. Derive a registry
// you can change with [Registry.Clone].
func Default() *Registry { return defaultRegistry }

// NewRegistry returns a mutable registry with the built-in serializers, json
// the default, and pickle, yaml and msgpack disabled, as Kombu is after
// disable_insecure_serializers(['json']):
//
//	name     content type                     encoding
//	json     application/json                 utf-8    (default)
//	msgpack  application/x-msgpack            binary   (disabled)
//	yaml     application/x-yaml               utf-8    (disabled)
//	pickle   application/x-python-serialize   binary   (disabled; always refused)
//	text     text/plain                       utf-8    (a Go addition: encode-only)
//
// "raw" is not registered but understood by Dumps, as in Kombu.
func NewRegistry() *Registry {
	t := &table{
		byName:     map[string]*Serializer{},
		decoders:   map[string]*Serializer{},
		typeToName: map[string]string{},
		disabled:   map[string]struct{}{},
		defaultSer: "json",
	}
	for _, s := range []Serializer{jsonSerializer(), msgpackSerializer(), yamlSerializer(), pickleSerializer(), textSerializer()} {
		t.add(s)
	}
	for _, ct := range []string{ContentTypeMsgpack, ContentTypeYAML, ContentTypePickle} {
		t.disabled[ct] = struct{}{}
	}
	r := &Registry{}
	r.tab.Store(t)
	return r
}

func (t *table) add(s Serializer) {
	if s.ContentEncoding == "" {
		s.ContentEncoding = EncodingUTF8
	}
	p := &s
	t.byName[s.Name] = p
	if s.Decode != nil {
		t.decoders[s.ContentType] = p
	}
	t.typeToName[s.ContentType] = s.Name
}

// Clone returns a mutable copy of r.
func (r *Registry) Clone() *Registry {
	c := &Registry{}
	c.tab.Store(r.load().clone())
	return c
}

func (r *Registry) load() *table {
	if t := r.tab.Load(); t != nil {
		return t
	}
	return &table{}
}

// update applies f to a copy of the current table and installs it.
func (r *Registry) update(f func(t *table) error) error {
	if r.immutable {
		return ErrImmutable
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.load().clone()
	for _, m := range []*map[string]*Serializer{&t.byName, &t.decoders} {
		if *m == nil {
			*m = map[string]*Serializer{}
		}
	}
	if t.typeToName == nil {
		t.typeToName = map[string]string{}
	}
	if t.disabled == nil {
		t.disabled = map[string]struct{}{}
	}
	if err := f(t); err != nil {
		return err
	}
	r.tab.Store(t)
	return nil
}

// Register adds or replaces the serializer s.Name, like Kombu's register.
// Whether its content type is disabled does not change: a new type starts
// enabled, a re-registered disabled one stays disabled. Returns
// [ErrInvalidSerializer] or [ErrImmutable].
func (r *Registry) Register(s Serializer) error {
	switch {
	case s.Name == "" || s.Name == "raw":
		return fmt.Errorf("%w: name %q is empty or reserved", ErrInvalidSerializer, s.Name)
	case s.ContentType == "":
		return fmt.Errorf("%w: %s has no content type", ErrInvalidSerializer, s.Name)
	case s.Encode == nil && s.Decode == nil:
		return fmt.Errorf("%w: %s has neither Encode nor Decode", ErrInvalidSerializer, s.Name)
	case s.DecodeInto != nil && s.Decode == nil:
		return fmt.Errorf("%w: %s has DecodeInto without Decode", ErrInvalidSerializer, s.Name)
	case s.AppendEncode != nil && s.Encode == nil:
		return fmt.Errorf("%w: %s has AppendEncode without Encode", ErrInvalidSerializer, s.Name)
	}
	return r.update(func(t *table) error {
		t.add(s)
		return nil
	})
}

// Unregister removes a serializer by name, like Kombu's unregister; its
// content type then decodes like an unknown one (text or bytes by content
// encoding). Removing the default serializer leaves none until
// [Registry.SetDefault]. Returns [ErrNotInstalled] for an unknown name, or
// [ErrImmutable].
func (r *Registry) Unregister(name string) error {
	return r.update(func(t *table) error {
		s, ok := t.byName[name]
		if !ok {
			return t.notInstalled(name)
		}
		delete(t.byName, name)
		delete(t.decoders, s.ContentType)
		delete(t.typeToName, s.ContentType)
		if t.defaultSer == name {
			t.defaultSer = ""
		}
		return nil
	})
}

// SetDefault makes name the serializer Dumps uses when none is named.
// Returns [ErrNotInstalled] if name has no encoder, or [ErrImmutable].
func (r *Registry) SetDefault(name string) error {
	return r.update(func(t *table) error {
		if s, ok := t.byName[name]; !ok || s.Encode == nil {
			return t.notInstalled(name)
		}
		t.defaultSer = name
		return nil
	})
}

// DefaultSerializer returns the name Dumps uses when none is given.
func (r *Registry) DefaultSerializer() string { return r.load().defaultSer }

// Enable removes a serializer (by name or content type) from the disabled
// set. Returns [ErrNotInstalled] for an unknown name, or [ErrImmutable].
func (r *Registry) Enable(nameOrType string) error {
	return r.update(func(t *table) error {
		ct, err := t.resolve(nameOrType)
		if err == nil {
			delete(t.disabled, ct)
		}
		return err
	})
}

// Disable adds a serializer (by name or content type) to the disabled set,
// which Loads refuses when called without an accept set. Returns
// [ErrNotInstalled] for an unknown name, or [ErrImmutable].
func (r *Registry) Disable(nameOrType string) error {
	return r.update(func(t *table) error {
		ct, err := t.resolve(nameOrType)
		if err == nil {
			t.disabled[ct] = struct{}{}
		}
		return err
	})
}

// EnableInsecure is Kombu's enable_insecure_serializers: it enables the
// named serializers, by default pickle, yaml and msgpack. Unknown names are
// ignored, as in Kombu. (Enabling pickle changes the error, not the outcome:
// it is always refused.) Returns [ErrImmutable] on [Default].
func (r *Registry) EnableInsecure(choices ...string) error {
	if len(choices) == 0 {
		choices = []string{"pickle", "yaml", "msgpack"}
	}
	return r.update(func(t *table) error {
		for _, c := range choices {
			if ct, err := t.resolve(c); err == nil {
				delete(t.disabled, ct)
			}
		}
		return nil
	})
}

// DisableInsecure is Kombu's disable_insecure_serializers: it disables every
// serializer that can decode, then enables the allowed ones, by default only
// json. Returns [ErrNotInstalled] for an unknown allowed name (nothing is
// changed then), or [ErrImmutable].
func (r *Registry) DisableInsecure(allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{"json"}
	}
	return r.update(func(t *table) error {
		for ct := range t.decoders {
			t.disabled[ct] = struct{}{}
		}
		for _, a := range allowed {
			ct, err := t.resolve(a)
			if err != nil {
				return err
			}
			delete(t.disabled, ct)
		}
		return nil
	})
}

// Disabled returns the disabled content types, sorted.
func (r *Registry) Disabled() []string {
	return slices.Sorted(maps.Keys(r.load().disabled))
}

// Names returns the registered serializer names, sorted ("raw", which is
// built into Dumps, is not among them).
func (r *Registry) Names() []string {
	return slices.Sorted(maps.Keys(r.load().byName))
}

// Lookup returns a copy of the serializer registered under name.
func (r *Registry) Lookup(name string) (Serializer, bool) {
	s, ok := r.load().byName[name]
	if !ok {
		return Serializer{}, false
	}
	return *s, true
}

// resolve maps a name or a content type (anything with a '/') to a content
// type, as Kombu's enable/disable and prepare_accept_content do.
func (t *table) resolve(nameOrType string) (string, error) {
	if strings.Contains(nameOrType, "/") {
		return nameOrType, nil
	}
	if nameOrType == "raw" {
		return ContentTypeData, nil
	}
	if ct, ok := t.nameToType(nameOrType); ok {
		return ct, nil
	}
	return "", t.notInstalled(nameOrType)
}

func (t *table) notInstalled(name string) error {
	names := append(slices.Sorted(maps.Keys(t.byName)), "raw")
	slices.Sort(names)
	return fmt.Errorf("%w: %q (installed: %s)", ErrNotInstalled, name, strings.Join(names, ", "))
}

// PrepareAccept turns serializer names and content types (anything with a
// '/') into an [AcceptSet], like Kombu's prepare_accept_content. A nil slice
// gives a nil set (the default policy); an empty slice gives an empty set
// (trusted types only). "raw" names application/data. Returns
// [ErrNotInstalled], naming the installed serializers, for an unknown name.
func (r *Registry) PrepareAccept(names []string) (*AcceptSet, error) {
	if names == nil {
		return nil, nil
	}
	t := r.load()
	a := &AcceptSet{types: make(map[string]struct{}, len(names))}
	for _, n := range names {
		ct, err := t.resolve(n)
		if err != nil {
			return nil, err
		}
		a.types[ct] = struct{}{}
	}
	return a, nil
}

// Dumps serializes v and returns the content type and encoding to send with
// it, following Kombu's dumps:
//
//   - serializer "raw": a []byte goes as application/data, binary; a string
//     as application/data, utf-8.
//   - no serializer and a []byte: application/data, binary, sent as is.
//   - no serializer and a string: text/plain, utf-8.
//   - otherwise the named serializer, or the default one (json).
//
// For a []byte sent as is, body is v itself, not a copy. Errors:
// [ErrNotInstalled] (naming the installed serializers), [*EncodeError]
// (matching [ErrEncode]; for pickle it also matches [ErrPickleUnsupported]).
func (r *Registry) Dumps(v any, serializer string) (contentType, contentEncoding string, body []byte, err error) {
	if serializer == "raw" {
		return rawEncode(v)
	}
	return r.dumps(nil, false, v, serializer)
}

// AppendDumps is [Registry.Dumps] appending the body to dst: out is dst
// with the body after it, written in place by a serializer with
// AppendEncode (json), copied from Encode's result otherwise, and copied
// for a []byte or string sent as is. A caller that serializes many values
// into one buffer saves an allocation per value. On error out is dst.
func (r *Registry) AppendDumps(dst []byte, v any, serializer string) (contentType, contentEncoding string, out []byte, err error) {
	if serializer == "raw" {
		ct, enc, body, err := rawEncode(v)
		if err != nil {
			return "", "", dst, err
		}
		return ct, enc, append(dst, body...), nil
	}
	return r.dumps(dst, true, v, serializer)
}

// dumps is Dumps (appending false: body is the serializer's result) and
// AppendDumps (appending true: body is dst with the serialized value
// appended) for every serializer but raw.
func (r *Registry) dumps(dst []byte, appending bool, v any, serializer string) (contentType, contentEncoding string, body []byte, err error) {
	fail := func(err error) (string, string, []byte, error) { return "", "", dst, err }
	send := func(ct, enc string, b []byte) (string, string, []byte, error) {
		if appending {
			b = append(dst, b...)
		}
		return ct, enc, b, nil
	}
	t := r.load()
	name := serializer
	if name == "" {
		switch b := v.(type) {
		case []byte:
			return send(ContentTypeData, EncodingBinary, b)
		case string:
			if !utf8.ValidString(b) {
				return fail(&EncodeError{Serializer: "text", Err: errInvalidUTF8})
			}
			if appending {
				return ContentTypeText, EncodingUTF8, append(dst, b...), nil
			}
			return ContentTypeText, EncodingUTF8, []byte(b), nil
		}
		name = t.defaultSer
	}
	s, ok := t.byName[name]
	if !ok || s.Encode == nil {
		if serializer == "" {
			return fail(fmt.Errorf("%w: no default serializer set", ErrNotInstalled))
		}
		return fail(t.notInstalled(serializer))
	}
	if appending && s.AppendEncode != nil {
		body, err = s.AppendEncode(dst, v)
	} else {
		body, err = s.Encode(v)
	}
	if err != nil {
		return fail(&EncodeError{Serializer: s.Name, Err: err})
	}
	if appending && s.AppendEncode != nil {
		return s.ContentType, s.ContentEncoding, body, nil
	}
	return send(s.ContentType, s.ContentEncoding, body)
}

func rawEncode(v any) (string, string, []byte, error) {
	switch b := v.(type) {
	case []byte:
		return ContentTypeData, EncodingBinary, b, nil
	case string:
		if !utf8.ValidString(b) {
			return "", "", nil, &EncodeError{Serializer: "raw", Err: errInvalidUTF8}
		}
		return ContentTypeData, EncodingUTF8, []byte(b), nil
	}
	return "", "", nil, &EncodeError{Serializer: "raw", Err: fmt.Errorf("raw needs a []byte or a string, got %T", v)}
}

// check applies Loads steps 1-3: the accept set, or the disabled set.
func (t *table) check(ct string, accept *AcceptSet) error {
	if accept != nil {
		if !trusted(ct) && !accept.Contains(ct) {
			return t.disallowed("untrusted", ct)
		}
		return nil
	}
	if _, off := t.disabled[ct]; off {
		return t.disallowed("disabled", ct)
	}
	return nil
}

func (t *table) disallowed(reason, ct string) error {
	name, ok := t.typeToName[ct]
	if !ok {
		name = ct
	}
	return &ContentDisallowedError{Reason: reason, Name: name, ContentType: ct}
}

// Loads deserializes body by its content type and encoding, following
// Kombu's loads:
//
//  1. An empty content type means application/data.
//  2. With an accept set, a type outside it and outside the trusted types
//     (application/data, application/text; not text/plain) is refused.
//  3. With a nil accept set, a disabled type (msgpack, yaml and pickle by
//     default) is refused.
//  4. An empty content encoding means utf-8; it is compared lowercased.
//  5. A non-empty body goes to the type's decoder if there is one; if not,
//     unless the encoding is binary or ascii-8bit, it is decoded to a string
//     (utf-8, ascii and latin-1 are supported).
//  6. Anything else (an empty body, binary data) is returned as the []byte
//     body itself.
//
// Decoded values: JSON objects are map[string]any, arrays []any, integers
// int64 (json.Number when beyond int64), other numbers float64, and Kombu's
// type envelopes become time.Time, string or []byte (see the package doc).
// msgpack and yaml give the same shapes, with map[any]any for maps whose
// keys are not all strings.
//
// Errors: [*ContentDisallowedError] (matching [ErrContentDisallowed]) and
// [*DecodeError] (matching [ErrDecode]).
func (r *Registry) Loads(body []byte, contentType, contentEncoding string, accept *AcceptSet) (any, error) {
	t := r.load()
	ct, s, err := t.prepare(contentType, accept)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return body, nil
	}
	if s != nil {
		v, err := s.Decode(body)
		if err != nil {
			return nil, &DecodeError{ContentType: ct, Err: err}
		}
		return v, nil
	}
	return decodeByEncoding(body, ct, contentEncoding)
}

// LoadsInto is Loads into a typed destination: dst must be a non-nil
// pointer. json, msgpack and yaml decode into any Go value their library
// supports (struct tags: json, msgpack, yaml). JSON type envelopes are first
// rewritten to the plain forms Kombu 5.2 sent: a datetime to an RFC 3339
// string (which a time.Time field reads), date, time, decimal and uuid to
// strings, bytes to base64 (which a []byte field reads). Without a typed
// decoder the result of Loads is stored in an *any, or, when it is text or
// bytes, in a *string or *[]byte.
//
// An empty body leaves dst untouched and returns nil, as Kombu returns an
// empty body unchanged. Errors as for Loads.
func (r *Registry) LoadsInto(body []byte, contentType, contentEncoding string, accept *AcceptSet, dst any) error {
	t := r.load()
	ct, s, err := t.prepare(contentType, accept)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	if s != nil && s.DecodeInto != nil {
		if err := s.DecodeInto(body, dst); err != nil {
			return &DecodeError{ContentType: ct, Err: err}
		}
		return nil
	}
	var v any
	if s != nil {
		if v, err = s.Decode(body); err != nil {
			return &DecodeError{ContentType: ct, Err: err}
		}
	} else if v, err = decodeByEncoding(body, ct, contentEncoding); err != nil {
		return err
	}
	return store(v, ct, dst)
}

// prepare runs Loads steps 1-3 and finds the decoder.
func (t *table) prepare(contentType string, accept *AcceptSet) (string, *Serializer, error) {
	ct := contentType
	if ct == "" {
		ct = ContentTypeData
	}
	if err := t.check(ct, accept); err != nil {
		return "", nil, err
	}
	return ct, t.decoders[ct], nil
}

// store puts a generic decoded value into dst.
func store(v any, ct string, dst any) error {
	switch d := dst.(type) {
	case *any:
		if d != nil {
			*d = v
			return nil
		}
	case *string:
		if d == nil {
			break
		}
		switch x := v.(type) {
		case string:
			*d = x
			return nil
		case []byte:
			*d = string(x)
			return nil
		}
	case *[]byte:
		if d == nil {
			break
		}
		switch x := v.(type) {
		case []byte:
			*d = x
			return nil
		case string:
			*d = []byte(x)
			return nil
		}
	}
	return &DecodeError{ContentType: ct, Err: fmt.Errorf("cannot store a %T in a %T", v, dst)}
}
