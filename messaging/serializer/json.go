package serializer

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

var errInvalidUTF8 = errors.New("invalid UTF-8")

// jsonSerializer is Kombu's json: application/json, utf-8.
//
// Encoding is encoding/json's, without HTML escaping (Python's json.dumps
// does not escape <, > or &). Python reads it as is: it differs from
// json.dumps only in spacing and in leaving non-ASCII characters unescaped.
// Go types with no JSON form in Kombu 5.2 get its plain forms, which every
// Kombu version reads: a time.Time is an RFC 3339 string ("Z" for UTC, up to
// nanoseconds; Python 3.11's datetime.fromisoformat reads it), and a []byte
// is a base64 string. No {"__type__", "__value__"} envelope is written, since
// Kombu 5.2 readers would hand the envelope itself to the application.
func jsonSerializer() Serializer {
	return Serializer{
		Name:            "json",
		ContentType:     ContentTypeJSON,
		ContentEncoding: EncodingUTF8,
		Encode:          jsonEncode,
		AppendEncode:    jsonAppend,
		Decode:          jsonDecode,
		DecodeInto:      jsonDecodeInto,
	}
}

// jsonBuffers recycles encoding buffers; the result is copied out.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func jsonEncode(v any) ([]byte, error) { return jsonAppend(make([]byte, 0, 128), v) }

func jsonAppend(dst []byte, v any) ([]byte, error) {
	if b, ok := appendJSONFast(dst, v); ok {
		return b, nil
	}
	buf := jsonBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 64<<10 {
			jsonBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	return append(dst, out[:len(out)-1]...), nil // drop Encode's newline
}

// decodeJSONTree parses data into a generic tree with json.Number numbers.
// Like Kombu's loads it requires valid UTF-8 and exactly one JSON value.
func decodeJSONTree(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, errInvalidUTF8
	}
	return parseJSONTree(data)
}

func jsonDecode(data []byte) (any, error) {
	v, err := decodeJSONTree(data)
	if err != nil {
		return nil, err
	}
	return walkJSON(v, false)
}

// typeKey marks a document that may hold Kombu type envelopes.
var typeKey = []byte(`"__type__"`)

func jsonDecodeInto(data []byte, dst any) error {
	if !bytes.Contains(data, typeKey) {
		if !utf8.Valid(data) {
			return errInvalidUTF8
		}
		return json.Unmarshal(data, dst)
	}
	// Slow path: rewrite envelopes to their plain forms, then decode the
	// rewritten document into dst.
	v, err := decodeJSONTree(data)
	if err != nil {
		return err
	}
	if v, err = walkJSON(v, true); err != nil {
		return err
	}
	plain, err := jsonEncode(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, dst)
}

// walkJSON converts a decoded tree in place, children first (as Python's
// object_hook runs): numbers become int64 or float64 (unless plain), and
// objects whose keys are exactly __type__ and __value__ are decoded as
// Kombu's type envelopes. plain selects the LoadsInto forms (strings and
// json.Number) over the Go values (time.Time, []byte, int64).
func walkJSON(v any, plain bool) (any, error) {
	w := jsonWalker{plain: plain}
	return w.walk(v)
}

// jsonWalker is walkJSON's state: it yields the processor every
// yieldEvery nodes (see yieldEvery).
type jsonWalker struct {
	plain bool
	nodes int
}

func (w *jsonWalker) walk(v any) (any, error) {
	if w.nodes++; w.nodes%yieldEvery == 0 {
		runtime.Gosched()
	}
	plain := w.plain
	var err error
	switch x := v.(type) {
	case json.Number:
		if plain {
			return x, nil
		}
		return convertNumber(x), nil
	case []any:
		for i := range x {
			if x[i], err = w.walk(x[i]); err != nil {
				return nil, err
			}
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			if x[k], err = w.walk(e); err != nil {
				return nil, err
			}
		}
		if len(x) == 2 {
			typ, ok1 := x["__type__"]
			val, ok2 := x["__value__"]
			if ok1 && ok2 {
				return decodeEnvelope(typ, val, plain)
			}
		}
		return x, nil
	}
	return v, nil
}

// convertNumber gives int64 for integers that fit, float64 for other
// numbers, and keeps the exact json.Number when neither can hold the value
// (Python integers are unbounded).
func convertNumber(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return n
}

// decodeEnvelope decodes {"__type__": typ, "__value__": val}, written by
// kombu.utils.json since Kombu 5.3:
//
//	datetime  datetime.isoformat()     -> time.Time (naive means UTC)
//	date      date.isoformat()         -> time.Time, midnight UTC
//	time      time.isoformat()         -> time.Time on 0000-01-01 (naive means UTC)
//	decimal   str(Decimal)             -> string, exact
//	uuid      {"hex": h, "version": v} -> string, 8-4-4-4-12 lowercase
//	bytes     str (the bytes as UTF-8) -> []byte
//	base64    str                      -> []byte
//
// In plain mode the results are instead the strings Kombu 5.2 would have
// sent (RFC 3339 for datetime) and base64 for bytes. An unknown type is an
// error, as in Kombu.
func decodeEnvelope(typ, val any, plain bool) (any, error) {
	name, ok := typ.(string)
	if !ok {
		return nil, fmt.Errorf("unsupported __type__ %v", typ)
	}
	if name == "uuid" {
		u, err := decodeUUID(val)
		if err != nil {
			return nil, fmt.Errorf("uuid envelope: %w", err)
		}
		return u, nil
	}
	s, ok := val.(string)
	if !ok {
		return nil, fmt.Errorf("%s envelope: __value__ is a %T, want a string", name, val)
	}
	var (
		t   time.Time
		err error
	)
	switch name {
	case "datetime":
		if t, err = parsePyDateTime(s); err == nil && plain {
			return t.Format(time.RFC3339Nano), nil
		}
	case "date":
		if t, err = time.Parse(time.DateOnly, s); err == nil && plain {
			return s, nil
		}
	case "time":
		if t, err = parsePyTime(s); err == nil && plain {
			return s, nil
		}
	case "decimal":
		return s, nil
	case "bytes":
		if plain {
			return base64.StdEncoding.EncodeToString([]byte(s)), nil
		}
		return []byte(s), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("base64 envelope: %w", err)
		}
		if plain {
			return base64.StdEncoding.EncodeToString(b), nil
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unsupported __type__ %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s envelope: %w", name, err)
	}
	return t, nil
}

// parsePyDateTime parses what Python's datetime.isoformat writes:
// YYYY-MM-DD[THH:MM[:SS[.ffffff]]][+HH:MM], with 'T' or ' ' between date and
// time, and "Z" accepted for UTC. A value without an offset is taken as UTC.
func parsePyDateTime(s string) (time.Time, error) {
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	for _, layout := range []string{
		"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05",
		"2006-01-02T15:04Z07:00", "2006-01-02T15:04", time.DateOnly,
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse %q as an ISO 8601 datetime", s)
}

// parsePyTime parses Python's time.isoformat: HH:MM[:SS[.ffffff]][+HH:MM].
func parsePyTime(s string) (time.Time, error) {
	for _, layout := range []string{"15:04:05Z07:00", "15:04:05", "15:04Z07:00", "15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse %q as an ISO 8601 time", s)
}

// decodeUUID mirrors uuid.UUID(hex=..., version=...): the hex may carry
// "urn:", "uuid:", braces and dashes; a version sets the version nibble and
// the RFC 4122 variant bits.
func decodeUUID(val any) (string, error) {
	m, ok := val.(map[string]any)
	if !ok {
		return "", fmt.Errorf("__value__ is a %T, want an object", val)
	}
	h, ok := m["hex"].(string)
	if !ok {
		return "", errors.New(`missing "hex" string`)
	}
	h = strings.NewReplacer("urn:", "", "uuid:", "").Replace(h)
	h = strings.ReplaceAll(strings.Trim(h, "{}"), "-", "")
	if len(h) != 32 {
		return "", fmt.Errorf("badly formed hexadecimal UUID string %q", h)
	}
	var u [16]byte
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return "", err
	}
	if v, present := m["version"]; present && v != nil {
		n, ok := uuidVersion(v)
		if !ok || n < 1 || n > 8 {
			return "", fmt.Errorf("illegal version number %v", v)
		}
		u[8] = u[8]&0x3f | 0x80
		u[6] = u[6]&0x0f | byte(n)<<4
	}
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	hex.Encode(b[9:13], u[4:6])
	hex.Encode(b[14:18], u[6:8])
	hex.Encode(b[19:23], u[8:10])
	hex.Encode(b[24:36], u[10:16])
	b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
	return string(b[:]), nil
}

func uuidVersion(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}
