package serializer_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/kombu-go/kombu/messaging/serializer"
)

func mustAccept(t *testing.T, names ...string) *serializer.AcceptSet {
	t.Helper()
	a, err := serializer.Default().PrepareAccept(names)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadsDefaults(t *testing.T) {
	r := serializer.Default()
	cases := []struct {
		name     string
		body     string
		ct, ce   string
		want     any
		wantKind string
	}{
		{"missing type is application/data, utf-8 is text", "abc", "", "", "abc", "string"},
		{"application/data binary stays bytes", "\x00\x01", "application/data", "binary", []byte{0, 1}, "bytes"},
		{"ascii-8bit stays bytes", "abc", "application/data", "ascii-8bit", []byte("abc"), "bytes"},
		{"encoding is case-insensitive", "abc", "application/data", "BINARY", []byte("abc"), "bytes"},
		{"text/plain utf-8", "héllo", "text/plain", "utf-8", "héllo", "string"},
		{"text/plain UTF8 alias", "x", "text/plain", "UTF8", "x", "string"},
		{"latin-1", "caf\xe9", "text/plain", "latin-1", "café", "string"},
		{"ascii", "plain", "text/plain", "us-ascii", "plain", "string"},
		{"unknown type decodes by encoding", "{}", "application/x-custom", "utf-8", "{}", "string"},
		{"json", `{"a": [1, 2.5, "x", null, true]}`, "application/json", "utf-8",
			map[string]any{"a": []any{int64(1), 2.5, "x", nil, true}}, "map"},
		{"json ignores the declared encoding", `"x"`, "application/json", "binary", "x", "string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Loads([]byte(c.body), c.ct, c.ce, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Loads = %#v (%T), want %#v (%T)", got, got, c.want, c.want)
			}
		})
	}
}

func TestLoadsEmptyBodyIsReturnedUnchanged(t *testing.T) {
	for _, ct := range []string{"application/json", "text/plain", "application/data", ""} {
		got, err := serializer.Default().Loads([]byte{}, ct, "utf-8", nil)
		if err != nil {
			t.Fatalf("%q: %v", ct, err)
		}
		if b, ok := got.([]byte); !ok || len(b) != 0 {
			t.Fatalf("%q: Loads(empty) = %#v, want the empty []byte", ct, got)
		}
	}
}

func TestLoadsTextEncodingErrors(t *testing.T) {
	r := serializer.Default()
	for name, c := range map[string][2]string{
		"bad utf-8":        {"\xff\xfe", "utf-8"},
		"non-ascii":        {"caf\xc3\xa9", "ascii"},
		"unknown encoding": {"x", "ebcdic-weird"},
	} {
		_, err := r.Loads([]byte(c[0]), "text/plain", c[1], nil)
		var de *serializer.DecodeError
		if !errors.As(err, &de) || !errors.Is(err, serializer.ErrDecode) || de.ContentType != "text/plain" {
			t.Errorf("%s: %v, want *DecodeError for text/plain", name, err)
		}
	}
}

func TestLoadsDisabledByDefault(t *testing.T) {
	r := serializer.Default()
	for ct, name := range map[string]string{
		"application/x-msgpack":          "msgpack",
		"application/x-yaml":             "yaml",
		"application/x-python-serialize": "pickle",
	} {
		_, err := r.Loads([]byte("x"), ct, "binary", nil)
		var cd *serializer.ContentDisallowedError
		if !errors.As(err, &cd) || !errors.Is(err, serializer.ErrContentDisallowed) {
			t.Fatalf("%s: %v, want ContentDisallowed", ct, err)
		}
		want := "serializer: Refusing to deserialize disabled content of type " + name + " (" + ct + ")"
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	}
	// json and text/plain are not disabled.
	if _, err := r.Loads([]byte("1"), "application/json", "utf-8", nil); err != nil {
		t.Errorf("json: %v", err)
	}
	if _, err := r.Loads([]byte("x"), "text/plain", "utf-8", nil); err != nil {
		t.Errorf("text/plain: %v", err)
	}
}

func TestLoadsAccept(t *testing.T) {
	r := serializer.Default()
	jsonOnly := mustAccept(t, "json")

	// Kombu's wording for an untrusted type.
	_, err := r.Loads([]byte("x"), "application/x-yaml", "utf-8", jsonOnly)
	if err == nil || err.Error() != "serializer: Refusing to deserialize untrusted content of type yaml (application/x-yaml)" {
		t.Fatalf("yaml under accept=[json]: %v", err)
	}
	_, err = r.Loads([]byte("{}"), "application/json", "utf-8", mustAccept(t, "msgpack"))
	if err == nil || err.Error() != "serializer: Refusing to deserialize untrusted content of type json (application/json)" {
		t.Fatalf("json under accept=[msgpack]: %v", err)
	}
	// text/plain is not trusted (spec §8 item 21).
	if _, err := r.Loads([]byte("x"), "text/plain", "utf-8", jsonOnly); !errors.Is(err, serializer.ErrContentDisallowed) {
		t.Fatalf("text/plain under accept=[json]: %v, want ContentDisallowed", err)
	}
	// An unknown type is named by itself.
	_, err = r.Loads([]byte("x"), "application/x-foo", "utf-8", jsonOnly)
	if err == nil || err.Error() != "serializer: Refusing to deserialize untrusted content of type application/x-foo (application/x-foo)" {
		t.Fatalf("unknown type: %v", err)
	}
	// Trusted types pass any accept set, even an empty one; a missing
	// content type is application/data.
	empty, err := r.PrepareAccept([]string{}) // non-nil and empty
	if err != nil || empty == nil {
		t.Fatal(empty, err)
	}
	for _, ct := range []string{"application/data", "application/text", ""} {
		if _, err := r.Loads([]byte("x"), ct, "utf-8", empty); err != nil {
			t.Errorf("trusted %q under an empty accept set: %v", ct, err)
		}
	}
	if _, err := r.Loads([]byte("1"), "application/json", "utf-8", empty); !errors.Is(err, serializer.ErrContentDisallowed) {
		t.Errorf("json under an empty accept set: %v", err)
	}
	// An accept set overrides the disabled set: msgpack is disabled by
	// default but decodes when accepted.
	got, err := r.Loads([]byte{0x93, 1, 2, 3}, "application/x-msgpack", "binary", mustAccept(t, "msgpack"))
	if err != nil || !reflect.DeepEqual(got, []any{int64(1), int64(2), int64(3)}) {
		t.Fatalf("msgpack accepted: %#v, %v", got, err)
	}
	// MIME types are accepted literally.
	if _, err := r.Loads([]byte("k: v"), "application/x-yaml", "utf-8", mustAccept(t, "application/x-yaml")); err != nil {
		t.Errorf("yaml accepted by MIME type: %v", err)
	}
}

func TestPickleRefused(t *testing.T) {
	r := serializer.Default()
	pickle := []byte("\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
	// Accepted explicitly, it still cannot be read.
	_, err := r.Loads(pickle, "application/x-python-serialize", "binary", mustAccept(t, "pickle"))
	if !errors.Is(err, serializer.ErrPickleUnsupported) || !errors.Is(err, serializer.ErrDecode) {
		t.Fatalf("accepted pickle: %v, want ErrPickleUnsupported and ErrDecode", err)
	}
	// Enabled in a registry, the same.
	e := serializer.NewRegistry()
	if err := e.EnableInsecure(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Loads(pickle, "application/x-python-serialize", "binary", nil); !errors.Is(err, serializer.ErrPickleUnsupported) {
		t.Fatalf("enabled pickle: %v", err)
	}
	var dst any
	if err := e.LoadsInto(pickle, "application/x-python-serialize", "binary", nil, &dst); !errors.Is(err, serializer.ErrPickleUnsupported) {
		t.Fatalf("LoadsInto pickle: %v", err)
	}
}

func TestLoadsInto(t *testing.T) {
	r := serializer.Default()
	type task struct {
		Args   []int          `json:"args" msgpack:"args" yaml:"args"`
		Kwargs map[string]any `json:"kwargs" msgpack:"kwargs" yaml:"kwargs"`
	}
	want := task{Args: []int{2, 3}, Kwargs: map[string]any{"x": "y"}}
	for _, name := range []string{"json", "msgpack", "yaml"} {
		ct, ce, body, err := r.Dumps(want, name)
		if err != nil {
			t.Fatal(err)
		}
		var got task
		if err := r.LoadsInto(body, ct, ce, mustAccept(t, name), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %#v, want %#v", name, got, want)
		}
	}

	// Without a typed decoder: text into *string and *[]byte, bytes into
	// *[]byte, anything into *any.
	var s string
	if err := r.LoadsInto([]byte("hi"), "text/plain", "utf-8", nil, &s); err != nil || s != "hi" {
		t.Fatalf("*string: %q, %v", s, err)
	}
	var b []byte
	if err := r.LoadsInto([]byte{1, 2}, "application/data", "binary", nil, &b); err != nil || !bytes.Equal(b, []byte{1, 2}) {
		t.Fatalf("*[]byte: %v, %v", b, err)
	}
	var a any
	if err := r.LoadsInto([]byte("hi"), "text/plain", "utf-8", nil, &a); err != nil || a != "hi" {
		t.Fatalf("*any: %#v, %v", a, err)
	}
	var n int
	if err := r.LoadsInto([]byte("hi"), "text/plain", "utf-8", nil, &n); !errors.Is(err, serializer.ErrDecode) {
		t.Fatalf("text into *int: %v, want ErrDecode", err)
	}
	// An empty body leaves dst alone.
	s = "untouched"
	if err := r.LoadsInto(nil, "application/json", "utf-8", nil, &s); err != nil || s != "untouched" {
		t.Fatalf("empty body: %q, %v", s, err)
	}
	// The accept policy applies.
	if err := r.LoadsInto([]byte("k: v"), "application/x-yaml", "utf-8", nil, &a); !errors.Is(err, serializer.ErrContentDisallowed) {
		t.Fatalf("disabled yaml: %v", err)
	}
	// Type mismatches are decode errors.
	if err := r.LoadsInto([]byte(`"str"`), "application/json", "utf-8", nil, &n); !errors.Is(err, serializer.ErrDecode) {
		t.Fatalf("json string into int: %v", err)
	}
	// A nil or non-pointer destination is a decode error, not a panic.
	if err := r.LoadsInto([]byte(`1`), "application/json", "utf-8", nil, nil); !errors.Is(err, serializer.ErrDecode) {
		t.Fatalf("nil dst: %v", err)
	}
	if err := r.LoadsInto([]byte{1}, "application/data", "binary", nil, (*[]byte)(nil)); !errors.Is(err, serializer.ErrDecode) {
		t.Fatalf("nil *[]byte: %v", err)
	}
}
