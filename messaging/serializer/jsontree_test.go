package serializer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decoderTree is what parseJSONTree replaces: encoding/json's Decoder with
// UseNumber, which must find exactly one value.
func decoderTree(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("extra data after the JSON value")
	}
	return v, nil
}

var treeSeeds = []string{
	`{"a": [1, -2.5e3, "x\u00e9\ud83d\ude00", true, false, null, {}, []], "a": 0}`,
	`"\ud800"`, `"\ud800\u0041"`, `"\/\b\f\n\r\t\"\\"`, ` 7 `, `-0`, `0.1e+5`, `1E9`,
	`01`, `1.`, `.5`, `-`, `1e`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `"a`, `"\x"`, `"\u12"`,
	"\"a\tb\"", `[`, `{`, `nul`, `truex`, `1 2`, `{} {}`, ``, ` `, `[[[[]]]]`,
	`"` + strings.Repeat("abcdefghij", 10000) + `"`, `"` + strings.Repeat(`a\"b`, 30000) + `"`,
}

// FuzzJSONTree: parseJSONTree agrees with json.Decoder (UseNumber) on
// every valid UTF-8 input: the same tree, or both an error.
func FuzzJSONTree(f *testing.F) {
	for _, s := range treeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		want, werr := decoderTree(data)
		got, gerr := parseJSONTree(data)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%q: decoder error %v, parser error %v", data, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: parser %#v, decoder %#v", data, got, want)
		}
	})
}

func TestJSONTreeDepth(t *testing.T) {
	deep := strings.Repeat("[", maxTreeDepth) + strings.Repeat("]", maxTreeDepth)
	if _, err := parseJSONTree([]byte(deep)); err != nil {
		t.Errorf("%d levels: %v", maxTreeDepth, err)
	}
	deeper := "[" + deep + "]"
	_, werr := decoderTree([]byte(deeper))
	if _, err := parseJSONTree([]byte(deeper)); err == nil || werr == nil {
		t.Errorf("%d levels: parser %v, decoder %v; want errors", maxTreeDepth+1, err, werr)
	}
}

// A long string comes out whole when it is copied in pieces.
func TestJSONTreeBigString(t *testing.T) {
	s := strings.Repeat("0123456789", 3*bigString/10+7)
	for _, in := range []string{`"` + s + `"`, `"\n` + s + `"`} {
		v, err := parseJSONTree([]byte(in))
		want, _ := decoderTree([]byte(in))
		if err != nil || v != want {
			t.Errorf("%d-byte string: %v", len(in), err)
		}
	}
}

// BenchmarkJSONTree20MB compares the parser with the json.Decoder it
// replaced on a 20 MiB document (one long string, the big message).
func BenchmarkJSONTree20MB(b *testing.B) {
	doc := []byte(`{"data": "` + strings.Repeat("0123456789", 2<<20) + `"}`)
	for _, c := range []struct {
		name string
		fn   func([]byte) (any, error)
	}{{"parser", parseJSONTree}, {"decoder", decoderTree}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.fn(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestControlChar(t *testing.T) {
	for n := 0; n <= 19; n++ {
		for pos := -1; pos < n; pos++ {
			for _, c := range []byte{0, 0x1f, 0x20, 0x7f, 0x80, 0xff} {
				b := bytes.Repeat([]byte{'a'}, n)
				want := -1
				if pos >= 0 {
					b[pos] = c
					if c < 0x20 {
						want = pos
					}
				}
				if got := controlChar(b); got != want {
					t.Fatalf("controlChar(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
