package serializer_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kombu-go/kombu/messaging/serializer"
)

func TestBuiltins(t *testing.T) {
	r := serializer.Default()
	if got, want := r.Names(), []string{"json", "msgpack", "pickle", "text", "yaml"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	for name, want := range map[string][2]string{
		"json":    {"application/json", "utf-8"},
		"msgpack": {"application/x-msgpack", "binary"},
		"yaml":    {"application/x-yaml", "utf-8"},
		"pickle":  {"application/x-python-serialize", "binary"},
		"text":    {"text/plain", "utf-8"},
	} {
		s, ok := r.Lookup(name)
		if !ok || s.ContentType != want[0] || s.ContentEncoding != want[1] {
			t.Errorf("Lookup(%q) = %q %q %v, want %q", name, s.ContentType, s.ContentEncoding, ok, want)
		}
	}
	if _, ok := r.Lookup("raw"); ok {
		t.Error("raw is registered; Kombu keeps it out of the registry")
	}
	if r.DefaultSerializer() != "json" {
		t.Errorf("default = %q", r.DefaultSerializer())
	}
	if got, want := r.Disabled(), []string{"application/x-msgpack", "application/x-python-serialize", "application/x-yaml"}; !slices.Equal(got, want) {
		t.Errorf("Disabled() = %q, want %q", got, want)
	}
}

func TestPrepareAccept(t *testing.T) {
	r := serializer.Default()
	a, err := r.PrepareAccept([]string{"json", "application/x-custom", "msgpack", "raw"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.ContentTypes(), []string{"application/data", "application/json", "application/x-custom", "application/x-msgpack"}; !slices.Equal(got, want) {
		t.Fatalf("ContentTypes() = %q, want %q", got, want)
	}
	if !a.Contains("application/json") || a.Contains("application/x-yaml") {
		t.Fatal("Contains is wrong")
	}
	if a, err := r.PrepareAccept(nil); a != nil || err != nil {
		t.Fatalf("PrepareAccept(nil) = %v, %v; want nil (default policy)", a, err)
	}
	if a, err := r.PrepareAccept([]string{}); a == nil || err != nil || len(a.ContentTypes()) != 0 {
		t.Fatalf("PrepareAccept([]) = %v, %v; want an empty set", a, err)
	}
	_, err = r.PrepareAccept([]string{"json", "protobuf"})
	if !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("unknown name: %v, want ErrNotInstalled", err)
	}
	for _, want := range []string{`"protobuf"`, "json", "msgpack", "yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	var nilSet *serializer.AcceptSet
	if nilSet.Contains("application/json") || nilSet.ContentTypes() != nil {
		t.Error("a nil set contains something")
	}
	if s := serializer.NewAcceptSet("a/b", "c/d"); !s.Contains("a/b") || s.Contains("json") {
		t.Error("NewAcceptSet is wrong")
	}
}

func upperSerializer() serializer.Serializer {
	return serializer.Serializer{
		Name:        "upper",
		ContentType: "application/x-upper",
		Encode:      func(v any) ([]byte, error) { return []byte(strings.ToUpper(fmt.Sprint(v))), nil },
		Decode:      func(b []byte) (any, error) { return strings.ToLower(string(b)), nil },
	}
}

func TestRegisterAndUnregister(t *testing.T) {
	r := serializer.NewRegistry()
	if err := r.Register(upperSerializer()); err != nil {
		t.Fatal(err)
	}
	ct, ce, body, err := r.Dumps("hi", "upper")
	if err != nil || ct != "application/x-upper" || ce != "utf-8" || string(body) != "HI" {
		t.Fatalf("Dumps = %q %q %q %v (encoding should default to utf-8)", ct, ce, body, err)
	}
	got, err := r.Loads(body, ct, ce, nil)
	if err != nil || got != "hi" {
		t.Fatalf("Loads = %#v, %v", got, err)
	}
	// Without DecodeInto, LoadsInto fills an *any only.
	var a any
	if err := r.LoadsInto(body, ct, ce, nil, &a); err != nil || a != "hi" {
		t.Fatalf("LoadsInto(*any) = %#v, %v", a, err)
	}
	if a, err := r.PrepareAccept([]string{"upper"}); err != nil || !a.Contains("application/x-upper") {
		t.Fatalf("PrepareAccept(upper) = %v, %v", a, err)
	}
	// Untrusted and named as registered.
	_, err = r.Loads(body, ct, ce, serializer.NewAcceptSet("application/json"))
	if err == nil || !strings.Contains(err.Error(), "type upper (application/x-upper)") {
		t.Fatalf("untrusted custom type: %v", err)
	}
	// Disable and enable by name and by type.
	if err := r.Disable("upper"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Loads(body, ct, ce, nil); !errors.Is(err, serializer.ErrContentDisallowed) {
		t.Fatalf("disabled: %v", err)
	}
	if err := r.Enable("application/x-upper"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Loads(body, ct, ce, nil); err != nil {
		t.Fatalf("re-enabled: %v", err)
	}

	if err := r.Unregister("upper"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Dumps("hi", "upper"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("Dumps after Unregister: %v", err)
	}
	// Its type is now unknown: decoded by content encoding.
	if got, err := r.Loads([]byte("HI"), "application/x-upper", "utf-8", nil); err != nil || got != "HI" {
		t.Fatalf("Loads after Unregister = %#v, %v", got, err)
	}
	if err := r.Unregister("upper"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("second Unregister: %v, want ErrNotInstalled", err)
	}
	if err := r.Unregister("raw"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("Unregister(raw): %v, want ErrNotInstalled", err)
	}
}

func TestEncodeOnlyAndDecodeOnly(t *testing.T) {
	r := serializer.NewRegistry()
	enc := upperSerializer()
	enc.Decode = nil
	if err := r.Register(enc); err != nil {
		t.Fatal(err)
	}
	// No decoder: the body comes back as text, by its encoding.
	if got, _ := r.Loads([]byte("HI"), "application/x-upper", "utf-8", nil); got != "HI" {
		t.Fatalf("encode-only Loads = %#v", got)
	}
	dec := upperSerializer()
	dec.Name, dec.Encode = "lower", nil
	if err := r.Register(dec); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Dumps("x", "lower"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("decode-only Dumps: %v, want ErrNotInstalled", err)
	}
	if err := r.SetDefault("lower"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("SetDefault(decode-only): %v", err)
	}
}

func TestRegisterInvalid(t *testing.T) {
	r := serializer.NewRegistry()
	ok := upperSerializer()
	for name, s := range map[string]serializer.Serializer{
		"empty name": {ContentType: "a/b", Encode: ok.Encode},
		"raw name":   {Name: "raw", ContentType: "a/b", Encode: ok.Encode},
		"no type":    {Name: "x", Encode: ok.Encode},
		"no funcs":   {Name: "x", ContentType: "a/b"},
		"into only":  {Name: "x", ContentType: "a/b", Encode: ok.Encode, DecodeInto: func([]byte, any) error { return nil }},
	} {
		if err := r.Register(s); !errors.Is(err, serializer.ErrInvalidSerializer) {
			t.Errorf("%s: %v, want ErrInvalidSerializer", name, err)
		}
	}
}

func TestDefaultIsImmutable(t *testing.T) {
	d := serializer.Default()
	for name, call := range map[string]func() error{
		"Register":        func() error { return d.Register(upperSerializer()) },
		"Unregister":      func() error { return d.Unregister("json") },
		"SetDefault":      func() error { return d.SetDefault("yaml") },
		"Enable":          func() error { return d.Enable("yaml") },
		"Disable":         func() error { return d.Disable("json") },
		"EnableInsecure":  func() error { return d.EnableInsecure() },
		"DisableInsecure": func() error { return d.DisableInsecure() },
	} {
		if err := call(); !errors.Is(err, serializer.ErrImmutable) {
			t.Errorf("%s on Default: %v, want ErrImmutable", name, err)
		}
	}
	c := d.Clone()
	if err := c.EnableInsecure(); err != nil {
		t.Fatal(err)
	}
	if len(c.Disabled()) != 0 {
		t.Fatalf("clone after EnableInsecure: disabled = %q", c.Disabled())
	}
	if len(d.Disabled()) != 3 {
		t.Fatalf("Default changed through a clone: disabled = %q", d.Disabled())
	}
}

func TestEnableDisableInsecure(t *testing.T) {
	r := serializer.NewRegistry()
	if err := r.EnableInsecure("yaml", "nonexistent"); err != nil {
		t.Fatal(err) // unknown names are ignored, as in Kombu
	}
	if got, want := r.Disabled(), []string{"application/x-msgpack", "application/x-python-serialize"}; !slices.Equal(got, want) {
		t.Fatalf("after EnableInsecure(yaml): %q", got)
	}
	if err := r.DisableInsecure("json", "msgpack"); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Disabled(), []string{"application/x-python-serialize", "application/x-yaml"}; !slices.Equal(got, want) {
		t.Fatalf("after DisableInsecure(json, msgpack): %q", got)
	}
	if err := r.DisableInsecure(); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Disabled(), []string{"application/x-msgpack", "application/x-python-serialize", "application/x-yaml"}; !slices.Equal(got, want) {
		t.Fatalf("after DisableInsecure(): %q", got)
	}
	if err := r.DisableInsecure("protobuf"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("DisableInsecure(unknown): %v", err)
	}
	if err := r.Enable("protobuf"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("Enable(unknown): %v", err)
	}
}

func TestZeroRegistry(t *testing.T) {
	var r serializer.Registry
	if _, _, _, err := r.Dumps(map[string]any{}, "json"); !errors.Is(err, serializer.ErrNotInstalled) {
		t.Fatalf("zero registry Dumps: %v", err)
	}
	// Loads still follows the content-encoding rules.
	if got, err := r.Loads([]byte("x"), "application/json", "utf-8", nil); err != nil || got != "x" {
		t.Fatalf("zero registry Loads = %#v, %v", got, err)
	}
	if err := r.Register(upperSerializer()); err != nil {
		t.Fatal(err)
	}
	if _, _, body, err := r.Dumps("a", "upper"); err != nil || string(body) != "A" {
		t.Fatalf("after Register: %q, %v", body, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := serializer.NewRegistry()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			for i := range 200 {
				ct, ce, body, err := r.Dumps(map[string]any{"i": i}, "json")
				if err == nil {
					var v any
					v, err = r.Loads(body, ct, ce, nil)
					if err == nil && !reflect.DeepEqual(v, map[string]any{"i": int64(i)}) {
						err = fmt.Errorf("got %#v", v)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			s := upperSerializer()
			s.Name = fmt.Sprintf("upper%d", i)
			if err := r.Register(s); err != nil {
				errs <- err
				return
			}
			_ = r.Disable(s.Name)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
