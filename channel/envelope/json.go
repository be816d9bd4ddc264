package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner is a small strict JSON reader (RFC 8259) for the envelope
// decoder. encoding/json costs ~16 µs and ~100 allocations for a typical
// Kombu envelope; this one decodes only what the envelope needs, matches keys
// without allocating, and copies nothing it does not keep.
//
// Strings follow encoding/json: unpaired surrogates become U+FFFD, and so
// does invalid UTF-8 unless strict is set (then it is an error). Nesting is
// limited to maxDepth levels. Python's NaN and Infinity literals are not
// JSON and are refused.
type scanner struct {
	data    []byte
	pos     int
	depth   int
	scratch []byte
	// strict refuses invalid UTF-8 in strings and the envelope fields of
	// the wrong type (see Decode).
	strict bool
}

var errDepth = errors.New("JSON nested too deeply")

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// ws skips white space and returns the next byte, or 0 at the end.
func (s *scanner) ws() byte {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// end checks that only white space is left.
func (s *scanner) end() error {
	if s.ws(); s.pos < len(s.data) {
		return s.errorf("data after the top-level value")
	}
	return nil
}

// object reads an object, calling member with each key; member must read
// the value. The key slice is valid only during the call.
func (s *scanner) object(member func(key []byte) error) error {
	if s.ws() != '{' {
		return s.errorf("expected an object")
	}
	if s.depth++; s.depth > maxDepth {
		return errDepth
	}
	s.pos++
	if s.ws() == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if s.ws() != '"' {
			return s.errorf("expected a key")
		}
		key, err := s.strBytes()
		if err != nil {
			return err
		}
		if s.ws() != ':' {
			return s.errorf("expected ':'")
		}
		s.pos++
		if err := member(key); err != nil {
			return err
		}
		switch s.ws() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("expected ',' or '}'")
		}
	}
}

// array reads an array, calling elem for each element; elem must read it.
func (s *scanner) array(elem func() error) error {
	if s.ws() != '[' {
		return s.errorf("expected an array")
	}
	if s.depth++; s.depth > maxDepth {
		return errDepth
	}
	s.pos++
	if s.ws() == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.ws() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errorf("expected ',' or ']'")
		}
	}
}

// strBytes reads a string and returns its decoded bytes: a slice of the
// input when it holds no escape or invalid UTF-8, else of the scratch
// buffer. Valid until the next call.
func (s *scanner) strBytes() ([]byte, error) {
	s.pos++ // the opening quote
	start := s.pos
	// Fast path for long plain strings (a base64 body of megabytes): find
	// the closing quote with IndexByte and check the run before it eight
	// bytes at a time. Anything special sends the byte loop below over
	// the string from its start.
	if q := bytes.IndexByte(s.data[start:], '"'); q >= 0 && plain(s.data[start:start+q]) {
		s.pos = start + q + 1
		return s.data[start : start+q], nil
	}
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], nil
		case c == '\\' || c >= utf8.RuneSelf:
			return s.strSlow(start)
		case c < 0x20:
			s.pos = i
			return nil, s.errorf("control character in string")
		}
	}
	s.pos = len(s.data)
	return nil, s.errorf("unterminated string")
}

// Masks for plain: every byte set to 0x01, 0x20, 0x5c ('\\') and 0x80.
const (
	ones  = 0x0101010101010101
	spcs  = 0x2020202020202020
	bslas = 0x5c5c5c5c5c5c5c5c
	highs = 0x8080808080808080
)

// plain reports whether b holds no byte that needs the slow path of
// strBytes: no backslash, no control character, no byte above 0x7f. It
// tests eight bytes at once (the "has a byte less than n" tricks of
// Hacker's Delight, 6-1); a borrow that crosses bytes can only follow a
// byte that matched, so a word with no match never reports one.
func plain(b []byte) bool {
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		x := w ^ bslas
		if (w|(w-spcs)&^w|(x-ones)&^x)&highs != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (s *scanner) strSlow(start int) ([]byte, error) {
	out := s.scratch[:0]
	i := start
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			s.scratch = out
			return out, nil
		case c < 0x20:
			s.pos = i
			return nil, s.errorf("control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.data[i:])
			if r == utf8.RuneError && size == 1 {
				if s.strict {
					s.pos = i
					return nil, s.errorf("invalid UTF-8")
				}
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s.data[i:i+size]...)
			}
			i += size
		case c != '\\':
			out = append(out, c)
			i++
		default:
			if i+1 >= len(s.data) {
				s.pos = i
				return nil, s.errorf("unterminated string")
			}
			e := s.data[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(s.data, i)
				if !ok {
					s.pos = i
					return nil, s.errorf("bad \\u escape")
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+1 < len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
						if x, ok := hex4(s.data, i+2); ok {
							r2 = x
						}
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				s.pos = i - 1
				return nil, s.errorf("bad escape")
			}
		}
	}
	s.pos = len(s.data)
	return nil, s.errorf("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// str reads a string value into a new Go string.
func (s *scanner) str() (string, error) {
	b, err := s.strBytes()
	if err != nil {
		return "", err
	}
	return internString(b), nil
}

// internString returns the Go string for b, without allocating for the
// values every Kombu envelope repeats.
func internString(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "utf-8":
		return "utf-8"
	case "binary":
		return "binary"
	case "base64":
		return "base64"
	case "application/json":
		return "application/json"
	case "application/x-python-serialize":
		return "application/x-python-serialize"
	case "text/plain":
		return "text/plain"
	case "application/data":
		return "application/data"
	case "application/x-gzip":
		return "application/x-gzip"
	case "py":
		return "py"
	}
	return string(b)
}

// number reads a number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	i := start
	d := s.data
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.errorf("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return nil, s.errorf("bad number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return nil, s.errorf("bad number")
		}
	}
	s.pos = i
	return d[start:i], nil
}

// numberValue converts number text to int64 when it is an integer that fits,
// else to float64; out-of-range floats are an error.
func numberValue(text []byte) (any, error) {
	isInt := true
	for _, c := range text {
		if c == '.' || c == 'e' || c == 'E' {
			isInt = false
			break
		}
	}
	if isInt {
		if i, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return i, nil
		}
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return nil, fmt.Errorf("number %s out of range", text)
	}
	return f, nil
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errorf("unexpected character %q", s.data[s.pos])
	}
	s.pos += len(word)
	return nil
}

// value reads any value into JSON-compatible Go values.
func (s *scanner) value() (any, error) {
	switch c := s.ws(); c {
	case '"':
		return s.str()
	case '{':
		m := map[string]any{}
		err := s.object(func(key []byte) error {
			k := internString(key)
			v, err := s.value()
			m[k] = v
			return err
		})
		return m, err
	case '[':
		a := []any{}
		err := s.array(func() error {
			v, err := s.value()
			a = append(a, v)
			return err
		})
		return a, err
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		return nil, s.literal("null")
	case 0:
		return nil, s.errorf("unexpected end of input")
	default:
		text, err := s.number()
		if err != nil {
			return nil, err
		}
		return numberValue(text)
	}
}

// skip reads a value of any kind without building it.
func (s *scanner) skip() error {
	switch c := s.ws(); c {
	case '"':
		_, err := s.strBytes()
		return err
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		return s.array(s.skip)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		return s.errorf("unexpected end of input")
	default:
		_, err := s.number()
		return err
	}
}

// raw reads a value and returns its bytes as they are in the input.
func (s *scanner) raw() ([]byte, error) {
	s.ws()
	start := s.pos
	err := s.skip()
	return s.data[start:s.pos], err
}

// decodeJSONValue decodes one JSON text into JSON-compatible Go values.
func decodeJSONValue(raw []byte) (any, error) {
	s := scanner{data: raw}
	v, err := s.value()
	if err != nil {
		return nil, err
	}
	return v, s.end()
}

// pyB64Decode decodes base64 the way Python's base64.b64decode does by
// default (binascii.a2b_base64, non-strict): bytes outside the standard
// alphabet are skipped, decoding stops at the padding that completes a
// quantum, and a final incomplete quantum is an error.
func pyB64Decode(s []byte) ([]byte, error) {
	// Fast path: well-formed padded base64 (what Kombu writes) decodes the
	// same under both rules.
	if len(s)%4 == 0 {
		out := make([]byte, base64Std.DecodedLen(len(s)))
		if n, err := base64Std.Decode(out, s); err == nil {
			return out[:n], nil
		}
	}
	out := make([]byte, 0, len(s)*3/4)
	var quad, pads, data int
	var left uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			pads++
			if quad >= 2 && quad+pads >= 4 {
				return out, nil
			}
			continue
		}
		v := b64Value(c)
		if v < 0 {
			continue
		}
		pads = 0
		data++
		switch quad {
		case 0:
			left = uint32(v)
			quad = 1
		case 1:
			out = append(out, byte(left<<2|uint32(v)>>4))
			left = uint32(v) & 0xf
			quad = 2
		case 2:
			out = append(out, byte(left<<4|uint32(v)>>2))
			left = uint32(v) & 0x3
			quad = 3
		case 3:
			out = append(out, byte(left<<6|uint32(v)))
			quad = 0
		}
	}
	switch quad {
	case 0:
		return out, nil
	case 1:
		return nil, fmt.Errorf("invalid base64: %d data characters cannot be 1 more than a multiple of 4", data)
	}
	return nil, errors.New("invalid base64: incorrect padding")
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}
