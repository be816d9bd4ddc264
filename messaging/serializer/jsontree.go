package serializer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// parseJSONTree parses one JSON text into the tree encoding/json's Decoder
// gives with UseNumber (map[string]any, []any, string, json.Number, bool,
// nil), with the same rules: RFC 8259 syntax, at most 10000 levels of
// nesting, lone surrogates as U+FFFD, the last of duplicate keys. The
// caller has checked that data is valid UTF-8.
//
// It exists for large bodies, which it parses off the hub: json.Decoder
// first copies its whole input into a buffer it grows by doubling, and
// encoding/json turns each string into a Go string with one copy. A copy is
// a single runtime memmove, which the scheduler cannot preempt and which,
// into memory fresh from the OS, runs at page-fault speed (about 5 ms a
// MiB on the machine of the README's measurements). A garbage collection
// that must stop that goroutine meanwhile holds up every other one, the
// hub's included. This parser does not copy its input, and copies strings
// of 64 KiB or more in pieces, yielding the processor between them.
func parseJSONTree(data []byte) (any, error) {
	p := treeParser{data: data, nextYield: yieldEvery}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if p.ws(); p.pos < len(p.data) {
		return nil, p.errorf("extra data after the JSON value")
	}
	return v, nil
}

// maxTreeDepth is encoding/json's nesting limit.
const maxTreeDepth = 10000

// bigString is the size from which strings are built by makeString's
// loop.
const bigString = 64 << 10

// yieldEvery is how much input the parser reads, and how many nodes
// walkJSON visits, between two yields of the processor (runtime.Gosched).
// A large body is parsed off the hub, and on a machine with few cores the
// hub may be waiting for the processor this goroutine holds: with the
// garbage collector's mark worker on the other one, the scheduler's own
// preemption would let it in only every 10 ms.
const yieldEvery = 64 << 10

type treeParser struct {
	data      []byte
	pos       int
	depth     int
	buf       []byte // unescaping scratch
	nextYield int
}

func (p *treeParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *treeParser) ws() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *treeParser) value() (any, error) {
	if p.pos >= p.nextYield {
		runtime.Gosched()
		p.nextYield = p.pos + yieldEvery
	}
	p.ws()
	if p.pos >= len(p.data) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, p.errorf("unexpected character %q", p.data[p.pos])
}

func (p *treeParser) literal(word string) error {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return p.errorf("invalid literal")
	}
	p.pos += len(word)
	return nil
}

func (p *treeParser) enter() error {
	if p.depth++; p.depth > maxTreeDepth {
		return errors.New("exceeded max depth")
	}
	p.pos++
	return nil
}

func (p *treeParser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	m := map[string]any{}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return m, nil
	}
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expected a key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expected ':'")
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.ws()
		if p.pos < len(p.data) {
			switch p.data[p.pos] {
			case ',':
				p.pos++
				continue
			case '}':
				p.pos++
				p.depth--
				return m, nil
			}
		}
		return nil, p.errorf("expected ',' or '}'")
	}
}

func (p *treeParser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	a := []any{}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return a, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.ws()
		if p.pos < len(p.data) {
			switch p.data[p.pos] {
			case ',':
				p.pos++
				continue
			case ']':
				p.pos++
				p.depth--
				return a, nil
			}
		}
		return nil, p.errorf("expected ',' or ']'")
	}
}

func (p *treeParser) number() (any, error) {
	d, i := p.data, p.pos
	if d[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case digits() == 0:
		p.pos = i
		return nil, p.errorf("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			p.pos = i
			return nil, p.errorf("bad number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.pos = i
			return nil, p.errorf("bad number")
		}
	}
	n := json.Number(d[p.pos:i])
	p.pos = i
	return n, nil
}

// str reads a string. Without escapes it is the input between the quotes;
// with them it is unescaped into the scratch buffer first.
func (p *treeParser) str() (string, error) {
	start := p.pos + 1
	end := bytes.IndexByte(p.data[start:], '"')
	if end < 0 {
		p.pos = len(p.data)
		return "", p.errorf("unterminated string")
	}
	seg := p.data[start : start+end]
	plain := bytes.IndexByte(seg, '\\') < 0
	if plain {
		if i := controlChar(seg); i >= 0 {
			p.pos = start + i
			return "", p.errorf("control character in string")
		}
		p.pos = start + end + 1
		return makeString(seg), nil
	}
	out := p.buf[:0]
	i := start
	for {
		if i >= len(p.data) {
			p.pos = i
			return "", p.errorf("unterminated string")
		}
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			p.buf = out
			return makeString(out), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character in string")
		case c != '\\':
			j := i + 1
			for j < len(p.data) && p.data[j] != '\\' && p.data[j] != '"' && p.data[j] >= 0x20 {
				j++
			}
			out = append(out, p.data[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(p.data) {
			p.pos = i
			return "", p.errorf("unterminated string")
		}
		e := p.data[i+1]
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
			r, ok := hex4(p.data, i)
			if !ok {
				p.pos = i
				return "", p.errorf("bad \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+1 < len(p.data) && p.data[i] == '\\' && p.data[i+1] == 'u' {
					if x, ok := hex4(p.data, i+2); ok {
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
			p.pos = i - 1
			return "", p.errorf("bad escape")
		}
	}
}

// controlChar returns the index of the first byte of b below 0x20, or -1.
// It tests eight bytes at a time ((w - 0x20...) &^ w & 0x80... is non-zero
// when a byte of w is below 0x20, Hacker's Delight 6-1) and looks at the
// bytes of a word only when the test says so.
func controlChar(b []byte) int {
	const spaces, highs = 0x2020202020202020, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if w := binary.LittleEndian.Uint64(b[i:]); (w-spaces)&^w&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return -1
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

// makeString returns b as a string; from bigString bytes up it is copied
// in pieces of 1 MiB, yielding the processor between them (strings.Builder
// allocates once and String does not copy).
func makeString(b []byte) string {
	if len(b) < bigString {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for {
		n := min(len(b), 1<<20)
		sb.Write(b[:n])
		if b = b[n:]; len(b) == 0 {
			return sb.String()
		}
		runtime.Gosched()
	}
}
