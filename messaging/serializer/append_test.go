package serializer_test

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging/serializer"
)

// AppendDumps gives Dumps's content type, encoding and body, after what
// dst held, for every kind of value and serializer (json in place, fast
// path and encoding/json's; msgpack and yaml copied; raw and as-is bodies
// copied); on error it returns dst as it was.
func TestAppendDumpsMatchesDumps(t *testing.T) {
	r := serializer.Default()
	type point struct{ X, Y int }
	cases := []struct {
		name, serializer string
		v                any
	}{
		{"json small map", "json", map[string]any{"i": 1, "payload": "xx"}},
		{"json default", "", map[string]any{"a": []any{1, "b", nil}}},
		{"json struct (encoding/json)", "json", point{1, 2}},
		{"json time", "json", time.Date(2026, 12, 2, 1, 2, 3, 4, time.UTC)},
		{"msgpack", "msgpack", map[string]any{"a": 1}},
		{"yaml", "yaml", map[string]any{"a": 1}},
		{"raw bytes", "raw", []byte{0, 1, 0xff}},
		{"raw string", "raw", "héllo"},
		{"as-is bytes", "", []byte("as is")},
		{"as-is string", "", "text"},
	}
	for _, c := range cases {
		ct, ce, want, err := r.Dumps(c.v, c.serializer)
		if err != nil {
			t.Fatalf("%s: Dumps: %v", c.name, err)
		}
		dst := make([]byte, 3, 4)
		copy(dst, "abc")
		act, ace, out, err := r.AppendDumps(dst, c.v, c.serializer)
		if err != nil {
			t.Fatalf("%s: AppendDumps: %v", c.name, err)
		}
		if act != ct || ace != ce || !bytes.Equal(out, append([]byte("abc"), want...)) {
			t.Errorf("%s: AppendDumps = %q %q %q, Dumps = %q %q abc%q", c.name, act, ace, out, ct, ce, want)
		}
	}
	for _, c := range []struct {
		name, serializer string
		v                any
	}{
		{"NaN", "json", math.NaN()},
		{"unknown serializer", "nope", 1},
		{"raw of an int", "raw", 1},
		{"invalid UTF-8 text", "", string([]byte{0xff})},
	} {
		dst := []byte("abc")
		_, _, out, err := r.AppendDumps(dst, c.v, c.serializer)
		_, _, _, derr := r.Dumps(c.v, c.serializer)
		if err == nil || derr == nil || errors.Is(err, serializer.ErrEncode) != errors.Is(derr, serializer.ErrEncode) {
			t.Errorf("%s: AppendDumps error %v, Dumps error %v", c.name, err, derr)
		}
		if string(out) != "abc" {
			t.Errorf("%s: out %q after an error, want dst", c.name, out)
		}
	}
}

// A serializer registered with AppendEncode is used in place; one with
// AppendEncode and no Encode is refused.
func TestAppendEncodeRegistered(t *testing.T) {
	r := serializer.NewRegistry()
	calls := 0
	err := r.Register(serializer.Serializer{Name: "x", ContentType: "application/x",
		Encode: func(any) ([]byte, error) { return []byte("E"), nil },
		AppendEncode: func(dst []byte, _ any) ([]byte, error) {
			calls++
			return append(dst, 'A'), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, out, err := r.AppendDumps([]byte("-"), 1, "x"); err != nil || string(out) != "-A" || calls != 1 {
		t.Fatalf("AppendDumps = %q, %v (calls %d)", out, err, calls)
	}
	if _, _, out, _ := r.Dumps(1, "x"); string(out) != "E" {
		t.Fatalf("Dumps = %q, want Encode's", out)
	}
	err = r.Register(serializer.Serializer{Name: "y", ContentType: "application/y",
		Decode:       func([]byte) (any, error) { return nil, nil },
		AppendEncode: func(dst []byte, _ any) ([]byte, error) { return dst, nil }})
	if !errors.Is(err, serializer.ErrInvalidSerializer) {
		t.Fatalf("AppendEncode without Encode: %v", err)
	}
}
