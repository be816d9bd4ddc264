package serializer

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// appendJSONFast appends the JSON of v, byte for byte what encoding/json
// writes with HTML escaping off, for the dynamic values message bodies are
// made of: nil, bool, string, the integer and float types, []byte,
// []any, []string, map[string]any and map[string]string, nested. It
// reports false, with dst unchanged, for anything else (structs, time.Time,
// json.Number, NaN and infinities, other maps and slices), which
// encoding/json then encodes. encoding/json spends most of a small body's
// encoding in reflection and its encoder state (measured: 1.9 µs for the
// benchmark's {"i": n, "payload": 64 bytes}); this writes it directly. The
// equality is fuzzed (FuzzJSONFast).
func appendJSONFast(dst []byte, v any) ([]byte, bool) {
	out, ok := appendFast(dst, v, 0)
	if !ok {
		return dst, false
	}
	return out, true
}

// maxFastDepth bounds the nesting the fast path follows (encoding/json
// detects cycles only through pointers, which this never follows).
const maxFastDepth = 64

func appendFast(b []byte, v any, depth int) ([]byte, bool) {
	if depth > maxFastDepth {
		return b, false
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		return strconv.AppendBool(b, x), true
	case string:
		return appendJSONString(b, x), true
	case int:
		return strconv.AppendInt(b, int64(x), 10), true
	case int8:
		return strconv.AppendInt(b, int64(x), 10), true
	case int16:
		return strconv.AppendInt(b, int64(x), 10), true
	case int32:
		return strconv.AppendInt(b, int64(x), 10), true
	case int64:
		return strconv.AppendInt(b, x, 10), true
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(b, x, 10), true
	case float64:
		return appendJSONFloat(b, x, 64)
	case float32:
		return appendJSONFloat(b, float64(x), 32)
	case []byte:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, x)
		return append(b, '"'), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendFast(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case []string:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e)
		}
		return append(b, ']'), true
	case map[string]any:
		if x == nil {
			return append(b, "null"...), true
		}
		if len(x) <= smallMap {
			return appendSmallMap(b, x, depth)
		}
		entries := make([]entry, 0, len(x))
		for k, v := range x {
			entries = append(entries, entry{k, v})
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		b = append(b, '{')
		for i, e := range entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e.k)
			b = append(b, ':')
			var ok bool
			if b, ok = appendFast(b, e.v, depth+1); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case map[string]string:
		if x == nil {
			return append(b, "null"...), true
		}
		var buf [smallMap]string
		keys := appendSortedKeys(buf[:0], x)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, x[k])
		}
		return append(b, '}'), true
	}
	return b, false
}

// smallMap is the size up to which a map's entries are sorted on the
// stack.
const smallMap = 8

// appendSmallMap is appendFast of a map of at most smallMap entries. The
// entries are copied into arrays on the stack and an array of their
// indexes is sorted by key: no allocation, one lookup per key, and no
// pointer moved while sorting (sorting the entries themselves through a
// slice cost a GC write barrier per move: a fifth of a small body's
// encoding, profiled).
func appendSmallMap(b []byte, x map[string]any, depth int) ([]byte, bool) {
	var keys [smallMap]string
	var vals [smallMap]any
	n := 0
	for k, v := range x {
		if n == smallMap {
			return b, false // the map grew: cannot happen without a data race
		}
		keys[n], vals[n] = k, v
		n++
	}
	var order [smallMap]uint8
	for i := range n {
		order[i] = uint8(i)
		for j := i; j > 0 && keys[order[j]] < keys[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	b = append(b, '{')
	for i, o := range order[:n] {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, keys[o])
		b = append(b, ':')
		var ok bool
		if b, ok = appendFast(b, vals[o], depth+1); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// entry is a map[string]any entry.
type entry struct {
	k string
	v any
}

// appendSortedKeys appends a map's keys to dst in encoding/json's order
// (sorted). Given a small array on the caller's stack, a small map's keys
// cost no allocation (a body's map, measured: a fifth of its encoding).
func appendSortedKeys[V any](dst []string, m map[string]V) []string {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// appendJSONFloat is encoding/json's float encoding: the shortest
// representation, in exponent form below 1e-6 or from 1e21 on (with a
// one-digit negative exponent written without its leading zero); NaN and
// infinities are not JSON (false).
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendJSONString is encoding/json's string encoding with HTML escaping
// off: quotes, backslashes and control characters escaped (\b, \f, \n,
// \r, \t by name, the others as \u00XX), U+2028 and U+2029 escaped, and
// each byte of invalid UTF-8 written as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if len(s)-i >= 8 && jsonPlain8(s[i:]) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Masks for jsonPlain8: every byte set to 0x01, 0x20, 0x22 ('"'), 0x5c
// ('\\') and 0x80.
const (
	ones8   = 0x0101010101010101
	spaces8 = 0x2020202020202020
	quotes8 = 0x2222222222222222
	slashs8 = 0x5c5c5c5c5c5c5c5c
	highs8  = 0x8080808080808080
)

// jsonPlain8 reports whether the first eight bytes of s (it has that many)
// are all written as they are by appendJSONString: ASCII, no control
// character, no '"' or '\\'. It tests them at once (Hacker's Delight 6-1):
// (w-n)&^w has a high bit set when some byte is below n, which finds the
// controls and, with w xor'ed with a byte repeated, the bytes equal to it;
// w itself has one for a non-ASCII byte. A borrow crossing into the next
// byte only follows a byte that matched.
func jsonPlain8(s string) bool {
	w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	q, k := w^quotes8, w^slashs8
	return ((w-spaces8)&^w|(q-ones8)&^q|(k-ones8)&^k|w)&highs8 == 0
}
