package serializer

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// stdJSON is encoding/json's output with HTML escaping off, without the
// Encoder's newline.
func stdJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestJSONFastMatchesEncodingJSON(t *testing.T) {
	cases := []any{
		nil, true, false, "", "plain", "quote\" back\\ <html> & \x00\x1f\x7f \b\f\n\r\t",
		"\u2028\u2029 é 日本", "bad \xff\xfe utf-8 \xc3", 0, -1, int8(-8), int16(300), int32(-7), int64(math.MinInt64),
		uint(7), uint8(255), uint16(65535), uint32(1 << 31), uint64(math.MaxUint64),
		0.0, -0.0, 1.5, 1e-7, 1e-6, 123456789.0, 1e20, 1e21, 1e300, math.SmallestNonzeroFloat64, -2.5e-10,
		float32(1.1), float32(1e-7), float32(3e38), []byte("bytes \x00"), []byte{}, []byte(nil),
		[]any{}, []any(nil), []any{1, "a", nil, []any{true}}, []string{"x", "\n"}, []string(nil),
		map[string]any{}, map[string]any(nil), map[string]string{"b": "2", "a": "1"},
		map[string]any{"i": 12345, "payload": strings.Repeat("x", 64), "nested": map[string]any{"z": []any{1.25, "q"}, "a": nil}},
	}
	for _, v := range cases {
		got, ok := appendJSONFast(nil, v)
		if !ok {
			t.Errorf("%#v: not handled", v)
			continue
		}
		if want := stdJSON(t, v); !bytes.Equal(got, want) {
			t.Errorf("%#v:\n got %s\nwant %s", v, got, want)
		}
	}
	// Left to encoding/json: NaN, infinities, types it handles its own way.
	for _, v := range []any{math.NaN(), math.Inf(1), float32(math.Inf(-1)), struct{ A int }{1}, json.Number("1"),
		map[string]any{"x": math.NaN()}, []any{struct{}{}}, map[int]string{1: "a"}} {
		if b, ok := appendJSONFast([]byte("keep"), v); ok || string(b) != "keep" {
			t.Errorf("%#v: handled (%q), want it left to encoding/json", v, b)
		}
	}
}

// FuzzJSONFast builds a tree of the fast path's types from the input and
// checks the output is encoding/json's, byte for byte.
func FuzzJSONFast(f *testing.F) {
	f.Add([]byte("\x06\x02ab\x01\x05hello"), 1.5, int64(7))
	f.Add([]byte("\x07\x03\x00\x01\xff\x02"), -1e-9, int64(-3))
	f.Fuzz(func(t *testing.T, data []byte, fl float64, n int64) {
		g := &gen{data: data, f: fl, n: n}
		v := g.value(0)
		got, ok := appendJSONFast(nil, v)
		if _, err := json.Marshal(v); err != nil {
			if ok {
				t.Fatalf("fast path encoded %#v that encoding/json refuses (%v)", v, err)
			}
			return
		}
		if !ok {
			t.Fatalf("fast path refused %#v", v)
		}
		if std := stdJSON(t, v); !bytes.Equal(got, std) {
			t.Fatalf("%#v:\n got %s\nwant %s", v, got, std)
		}
	})
}

// gen turns fuzz bytes into a value of the fast path's types.
type gen struct {
	data []byte
	f    float64
	n    int64
}

func (g *gen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *gen) str() string {
	n := int(g.byte() % 16)
	n = min(n, len(g.data))
	s := string(g.data[:n])
	g.data = g.data[n:]
	return s
}

func (g *gen) value(depth int) any {
	switch k := g.byte() % 12; {
	case depth > 4 || k == 0:
		return nil
	case k == 1:
		return g.byte()%2 == 0
	case k == 2:
		return g.str()
	case k == 3:
		return g.n * int64(g.byte())
	case k == 4:
		return g.f * float64(g.byte())
	case k == 5:
		return float32(g.f)
	case k == 6:
		m := map[string]any{}
		for range g.byte() % 4 {
			m[g.str()] = g.value(depth + 1)
		}
		return m
	case k == 7:
		var a []any
		for range g.byte() % 4 {
			a = append(a, g.value(depth+1))
		}
		return a
	case k == 8:
		return []byte(g.str())
	case k == 9:
		return []string{g.str(), g.str()}
	case k == 10:
		return map[string]string{g.str(): g.str()}
	default:
		return uint64(g.n) * uint64(g.byte())
	}
}

// jsonPlain8 agrees with a byte loop for every byte value at every
// position of eight bytes, over backgrounds of every byte appendJSONString
// copies as it is.
func TestJSONPlain8(t *testing.T) {
	plain := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	for bg := 0; bg < 256; bg++ {
		if !plain(byte(bg)) {
			continue
		}
		buf := []byte("........")
		for i := range buf {
			buf[i] = byte(bg)
		}
		for pos := range buf {
			for c := 0; c < 256; c++ {
				buf[pos] = byte(c)
				want := true
				for _, x := range buf {
					want = want && plain(x)
				}
				if got := jsonPlain8(string(buf)); got != want {
					t.Fatalf("jsonPlain8(%q) = %v, want %v", buf, got, want)
				}
			}
			buf[pos] = byte(bg)
		}
	}
}
