package serializer_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging/serializer"
)

// insecure is a registry with msgpack and yaml enabled.
func insecure(t *testing.T) *serializer.Registry {
	t.Helper()
	r := serializer.NewRegistry()
	if err := r.EnableInsecure("msgpack", "yaml"); err != nil {
		t.Fatal(err)
	}
	return r
}

// kombuMsgpack is what Kombu 5.2.4 (msgpack.packb(use_bin_type=True),
// python3-msgpack 1.0.3) wrote, made with /usr/bin/python3:
//
//	dumps({"s": "str", "b": b"\x00\xffbin", "i": 1, "big": 2**63, "neg": -2**40,
//	       "f": 1.5, "l": [1, None, True], "m": {1: "one"}}, serializer="msgpack")
const kombuMsgpack = "88a173a3737472a162c40500ff62696ea16901a3626967cf8000000000000000a36e6567d3ffffff0000000000a166cb3ff8000000000000a16c9301c0c3a16d8101a36f6e65"

func TestMsgpackFromKombu(t *testing.T) {
	body, _ := hex.DecodeString(kombuMsgpack)
	got, err := insecure(t).Loads(body, "application/x-msgpack", "binary", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"s":   "str",
		"b":   []byte("\x00\xffbin"), // bin stays bytes
		"i":   int64(1),
		"big": uint64(1 << 63), // above MaxInt64
		"neg": int64(-1 << 40),
		"f":   1.5,
		"l":   []any{int64(1), nil, true},
		"m":   map[any]any{int64(1): "one"}, // a non-string key
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Loads =\n%#v\nwant\n%#v", got, want)
	}
}

func TestMsgpackRoundTrip(t *testing.T) {
	r := insecure(t)
	in := map[string]any{
		"args":   []any{int64(2), int64(3)},
		"kwargs": map[string]any{"name": "x", "raw": []byte{0, 1}},
		"when":   time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
		"f":      2.5,
		"n":      nil,
	}
	ct, ce, body, err := r.Dumps(in, "msgpack")
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Loads(body, ct, ce, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := got.(map[string]any)
	if tm, ok := m["when"].(time.Time); !ok || !tm.Equal(in["when"].(time.Time)) {
		t.Fatalf("when = %#v", m["when"])
	}
	delete(m, "when")
	delete(in, "when")
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip = %#v, want %#v", got, in)
	}
	// Small integers are written compactly (fixint), as Python does.
	_, _, body, _ = r.Dumps(int64(1), "msgpack")
	if !bytes.Equal(body, []byte{0x01}) {
		t.Fatalf("int64(1) = %x, want 01", body)
	}
}

func TestMsgpackErrors(t *testing.T) {
	r := insecure(t)
	deep := bytes.Repeat([]byte{0x91}, 20000) // [[[[...
	cases := map[string][]byte{
		"truncated":     {0x92, 0x01},
		"extra data":    {0x01, 0x02},
		"array key":     {0x81, 0x90, 0x01},
		"reserved code": {0xc1},
		"too deep":      append(deep, 0xc0),
		"huge array":    {0xdd, 0xff, 0xff, 0xff, 0xff},
	}
	for name, body := range cases {
		_, err := r.Loads(body, "application/x-msgpack", "binary", nil)
		if !errors.Is(err, serializer.ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", name, err)
		}
		var dst any
		if err := r.LoadsInto(body, "application/x-msgpack", "binary", nil, &dst); !errors.Is(err, serializer.ErrDecode) {
			t.Errorf("%s via LoadsInto: %v, want ErrDecode", name, err)
		}
	}
	// A header may declare up to 4 GiB in five bytes; the decoder must not
	// allocate it (the fuzzer found the library doing so).
	for name, body := range map[string][]byte{
		"bin32":   {0xc6, 0x6c, 0xd1, 0x16, 0x18, 0x6c},
		"str32":   {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'},
		"ext32":   {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'x'},
		"array32": {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
		"map32":   {0xdf, 0x7f, 0xff, 0xff, 0xff, 0x01, 0x01},
		"nested":  {0x92, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff},
	} {
		var err, errInto error
		allocated := allocatedBy(func() {
			_, err = r.Loads(body, "application/x-msgpack", "binary", nil)
			var dst struct{ X any }
			errInto = r.LoadsInto(body, "application/x-msgpack", "binary", nil, &dst)
		})
		if !errors.Is(err, serializer.ErrDecode) || !errors.Is(errInto, serializer.ErrDecode) {
			t.Errorf("%s: %v / %v, want ErrDecode", name, err, errInto)
		}
		if allocated > 64<<10 {
			t.Errorf("%s: refusing a %d-byte body allocated %d bytes", name, len(body), allocated)
		}
	}
	// A bin map key becomes a string key.
	got, err := r.Loads([]byte{0x81, 0xc4, 0x01, 'k', 0x01}, "application/x-msgpack", "binary", nil)
	if err != nil || !reflect.DeepEqual(got, map[any]any{"k": int64(1)}) {
		t.Fatalf("bin key: %#v, %v", got, err)
	}
}

func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// kombuYAML is what Kombu 5.2.4 (yaml.safe_dump, PyYAML) wrote, made with
// /usr/bin/python3: dumps({"s": "str", "i": 1, "f": 1.5, "l": [1, None, True],
// "m": {"k": "v"}}, serializer="yaml").
const kombuYAML = "f: 1.5\ni: 1\nl:\n- 1\n- null\n- true\nm:\n  k: v\ns: str\n"

func TestYAMLFromKombu(t *testing.T) {
	got, err := insecure(t).Loads([]byte(kombuYAML), "application/x-yaml", "utf-8", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"f": 1.5, "i": int64(1), "l": []any{int64(1), nil, true},
		"m": map[string]any{"k": "v"}, "s": "str",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Loads = %#v, want %#v", got, want)
	}
}

// laughs is the "billion laughs" alias bomb: 9^9 strings if expanded.
var laughs = func() string {
	doc := `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n"
	for c := 'b'; c <= 'i'; c++ {
		p := string(c - 1)
		doc += fmt.Sprintf("%c: &%c [%s]\n", c, c, strings.Repeat("*"+p+",", 8)+"*"+p)
	}
	return doc
}()

func TestYAMLShapes(t *testing.T) {
	r := insecure(t)
	got, err := r.Loads([]byte("1: one\nbig: 18446744073709551615\n"), "application/x-yaml", "utf-8", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[any]any{int64(1): "one", "big": uint64(math.MaxUint64)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Loads = %#v, want %#v", got, want)
	}
	for name, body := range map[string]string{
		"two documents": "a: 1\n---\nb: 2\n",
		"syntax":        "a: [1, 2\n",
		"too deep":      strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
		"alias bomb":    laughs,
	} {
		_, err := r.Loads([]byte(body), "application/x-yaml", "utf-8", nil)
		if !errors.Is(err, serializer.ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", name, err)
		}
		if name == "alias bomb" && !strings.Contains(fmt.Sprint(err), "excessive aliasing") {
			t.Errorf("alias bomb refused for another reason: %v", err)
		}
	}
}
