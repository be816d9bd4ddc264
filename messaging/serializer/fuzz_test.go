package serializer_test

import (
	"errors"
	"testing"

	"github.com/kombu-go/kombu/messaging/serializer"
)

// fuzzLoads checks that Loads and LoadsInto never panic and fail only with
// ErrDecode, and that a decoded value encodes again.
func fuzzLoads(f *testing.F, contentType string, seeds ...string) {
	r := serializer.NewRegistry()
	if err := r.EnableInsecure("msgpack", "yaml"); err != nil {
		f.Fatal(err)
	}
	name := map[string]string{
		serializer.ContentTypeJSON:    "json",
		serializer.ContentTypeMsgpack: "msgpack",
		serializer.ContentTypeYAML:    "yaml",
	}[contentType]
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := r.Loads(body, contentType, "utf-8", nil)
		if err != nil {
			if !errors.Is(err, serializer.ErrDecode) {
				t.Fatalf("error %v is not ErrDecode", err)
			}
			return
		}
		var dst any
		if err := r.LoadsInto(body, contentType, "utf-8", nil, &dst); err != nil && !errors.Is(err, serializer.ErrDecode) {
			t.Fatalf("LoadsInto error %v is not ErrDecode", err)
		}
		if len(body) == 0 {
			return
		}
		// What was decoded can be encoded again (json.Number and time.Time
		// included); yaml can decode keys JSON cannot hold, so only the
		// format itself must round trip.
		if _, _, _, err := r.Dumps(v, name); err != nil {
			t.Fatalf("Dumps of decoded %#v: %v", v, err)
		}
	})
}

func FuzzLoadsJSON(f *testing.F) {
	fuzzLoads(f, serializer.ContentTypeJSON,
		celeryBody, kombu52JSON, kombu53JSON, `{"a": [1, 2.5e10, -0, "\u00e9"]}`,
		`{"__type__": "uuid", "__value__": {"hex": "6f1c2a5e9a7b4c1d8e2f0a1b2c3d4e5f", "version": 4}}`,
		`{"__type__": "datetime", "__value__": "2024-01-02 03:04:05"}`,
		`[9223372036854775808, 1e400]`, `"`, `[`, `{} x`)
}

func FuzzLoadsMsgpack(f *testing.F) {
	fuzzLoads(f, serializer.ContentTypeMsgpack,
		"\x93\x92\x02\x03\x80\x84\xa9callbacks\xc0\xa8errbacks\xc0\xa5chain\xc0\xa5chord\xc0",
		"\x81\x01\xa3one", "\xd6\xff\x00\x00\x00\x01", "\xc4\x02\x00\xff", "\xdd\xff\xff\xff\xff")
}

func FuzzLoadsYAML(f *testing.F) {
	fuzzLoads(f, serializer.ContentTypeYAML,
		kombuYAML, "a: &x [1]\nb: *x\n", "- !!binary aGVsbG8=\n", "1: one\n", "[[[[")
}
