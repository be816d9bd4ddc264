package serializer_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kombu-go/kombu/messaging/serializer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestDumpsRules(t *testing.T) {
	r := serializer.Default()
	cases := []struct {
		name       string
		v          any
		serializer string
		ct, ce     string
		body       string
	}{
		{"no serializer, bytes", []byte{0, 1, 0xff}, "", "application/data", "binary", "\x00\x01\xff"},
		{"no serializer, string", "héllo", "", "text/plain", "utf-8", "héllo"},
		{"no serializer, map uses json", map[string]any{"a": 1}, "", "application/json", "utf-8", `{"a":1}`},
		{"raw bytes", []byte("x"), "raw", "application/data", "binary", "x"},
		{"raw string", "x", "raw", "application/data", "utf-8", "x"},
		{"json string", "x", "json", "application/json", "utf-8", `"x"`},
		{"json bytes are base64", []byte{0, 0xff}, "json", "application/json", "utf-8", `"AP8="`},
		{"text", "plain words", "text", "text/plain", "utf-8", "plain words"},
		{"yaml", map[string]any{"k": "v"}, "yaml", "application/x-yaml", "utf-8", "k: v\n"},
		{"msgpack", map[string]any{"a": 1}, "msgpack", "application/x-msgpack", "binary", "\x81\xa1a\x01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct, ce, body, err := r.Dumps(c.v, c.serializer)
			if err != nil {
				t.Fatal(err)
			}
			if ct != c.ct || ce != c.ce || string(body) != c.body {
				t.Fatalf("Dumps = (%q, %q, %q), want (%q, %q, %q)", ct, ce, body, c.ct, c.ce, c.body)
			}
		})
	}
}

func TestDumpsBytesAreNotCopied(t *testing.T) {
	in := []byte("payload")
	_, _, body, err := serializer.Default().Dumps(in, "")
	if err != nil {
		t.Fatal(err)
	}
	if &body[0] != &in[0] {
		t.Fatal("a []byte body sent as is was copied")
	}
}

func TestDumpsJSONMatchesPythonReadableForms(t *testing.T) {
	eta := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)
	_, _, body, err := serializer.Default().Dumps(map[string]any{
		"eta": eta, "html": "<a&b>", "uni": "café",
	}, "json")
	if err != nil {
		t.Fatal(err)
	}
	// A UTC time is Kombu 5.2's plain form (ISO 8601 with Z), HTML is not
	// escaped, and no envelope is written.
	want := `{"eta":"2024-01-02T03:04:05.123456Z","html":"<a&b>","uni":"café"}`
	if string(body) != want {
		t.Fatalf("body = %s, want %s", body, want)
	}
}

func TestDumpsErrors(t *testing.T) {
	r := serializer.Default()
	_, _, _, err := r.Dumps(1, "protobuf")
	if !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("unknown serializer: %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{`"protobuf"`, "json", "msgpack", "yaml", "pickle", "raw", "text"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	_, _, _, err = r.Dumps(map[string]any{}, "pickle")
	if !errors.Is(err, serializer.ErrPickleUnsupported) || !errors.Is(err, serializer.ErrEncode) {
		t.Fatalf("pickle: %v, want ErrPickleUnsupported and ErrEncode", err)
	}
	if !strings.Contains(err.Error(), "Python pickles cannot be read safely outside Python; use json") {
		t.Errorf("pickle error %q lacks the explanation", err)
	}

	_, _, _, err = r.Dumps(make(chan int), "json")
	var ee *serializer.EncodeError
	if !errors.As(err, &ee) || ee.Serializer != "json" || !errors.Is(err, serializer.ErrEncode) {
		t.Fatalf("unencodable value: %v, want *EncodeError for json", err)
	}

	for name, call := range map[string]func() error{
		"raw int":          func() error { _, _, _, err := r.Dumps(5, "raw"); return err },
		"raw bad utf-8":    func() error { _, _, _, err := r.Dumps("\xff", "raw"); return err },
		"string bad utf-8": func() error { _, _, _, err := r.Dumps("\xff", ""); return err },
		"text int":         func() error { _, _, _, err := r.Dumps(5, "text"); return err },
		"text bad utf-8":   func() error { _, _, _, err := r.Dumps([]byte{0xff}, "text"); return err },
		"yaml func":        func() error { _, _, _, err := r.Dumps(func() {}, "yaml"); return err },
		"msgpack chan":     func() error { _, _, _, err := r.Dumps(make(chan int), "msgpack"); return err },
	} {
		if err := call(); !errors.Is(err, serializer.ErrEncode) {
			t.Errorf("%s: %v, want ErrEncode", name, err)
		}
	}
}

func TestDumpsWithoutDefault(t *testing.T) {
	r := serializer.NewRegistry()
	if err := r.Unregister("json"); err != nil {
		t.Fatal(err)
	}
	if r.DefaultSerializer() != "" {
		t.Fatalf("default after unregistering json = %q", r.DefaultSerializer())
	}
	if _, _, _, err := r.Dumps(map[string]any{}, ""); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("no default: %v, want ErrNotInstalled", err)
	}
	// Bytes and strings still need no serializer.
	if ct, _, _, err := r.Dumps("s", ""); err != nil || ct != "text/plain" {
		t.Fatalf("string without default: %q, %v", ct, err)
	}
	if err := r.SetDefault("msgpack"); err != nil {
		t.Fatal(err)
	}
	if ct, ce, _, err := r.Dumps(map[string]any{}, ""); err != nil || ct != "application/x-msgpack" || ce != "binary" {
		t.Fatalf("msgpack default: %q %q %v", ct, ce, err)
	}
}
