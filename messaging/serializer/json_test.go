package serializer_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging/serializer"
)

func loadsJSON(t *testing.T, body string) any {
	t.Helper()
	v, err := serializer.Default().Loads([]byte(body), "application/json", "utf-8", nil)
	if err != nil {
		t.Fatalf("Loads(%s): %v", body, err)
	}
	return v
}

// The Celery protocol 2 body (spec §6.3), as Celery writes it.
const celeryBody = `[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`

func TestCeleryBody(t *testing.T) {
	got := loadsJSON(t, celeryBody)
	want := []any{
		[]any{int64(2), int64(3)},
		map[string]any{},
		map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Loads = %#v, want %#v", got, want)
	}
	// Typed: [args, kwargs, embed].
	var parts [3]json.RawMessage
	if err := serializer.Default().LoadsInto([]byte(celeryBody), "application/json", "utf-8", nil, &parts); err != nil {
		t.Fatal(err)
	}
	var args []int
	if err := json.Unmarshal(parts[0], &args); err != nil || !reflect.DeepEqual(args, []int{2, 3}) {
		t.Fatalf("args = %v, %v", args, err)
	}
	// And back: Dumps of the decoded value is the same JSON, compact.
	_, _, body, err := serializer.Default().Dumps(got, "json")
	if err != nil {
		t.Fatal(err)
	}
	if want := `[[2,3],{},{"callbacks":null,"chain":null,"chord":null,"errbacks":null}]`; string(body) != want {
		t.Fatalf("Dumps = %s, want %s", body, want)
	}
}

// kombu52JSON is what Kombu 5.2.4's dumps wrote for a dict holding a UTC
// datetime, a Decimal, a UUID, non-ASCII text and a 71-bit integer; made with
// /usr/bin/python3 and python3-kombu 5.2.4:
//
//	dumps({"eta": datetime(2024,1,2,3,4,5,123456,tzinfo=timezone.utc),
//	       "price": Decimal("12.50"), "id": UUID("6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f"),
//	       "name": "caf\u00e9 <&>", "big": 2**70, "f": 1.5, "neg": -7,
//	       "nested": {"list": [1, "two", None, True]}}, serializer="json")
const kombu52JSON = `{"eta": "2024-01-02T03:04:05.123456Z", "price": "12.50", "id": "6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f", "name": "caf\u00e9 <&>", "big": 1180591620717411303424, "f": 1.5, "neg": -7, "nested": {"list": [1, "two", null, true]}}`

func TestKombu52JSON(t *testing.T) {
	got := loadsJSON(t, kombu52JSON)
	want := map[string]any{
		"eta":    "2024-01-02T03:04:05.123456Z", // plain strings stay strings
		"price":  "12.50",
		"id":     "6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f",
		"name":   "café <&>",
		"big":    json.Number("1180591620717411303424"), // beyond int64: exact
		"f":      1.5,
		"neg":    int64(-7),
		"nested": map[string]any{"list": []any{int64(1), "two", nil, true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Loads =\n%#v\nwant\n%#v", got, want)
	}
	// A typed reader gets time.Time from the 5.2 form.
	var typed struct {
		ETA   time.Time `json:"eta"`
		Price string    `json:"price"`
	}
	if err := serializer.Default().LoadsInto([]byte(kombu52JSON), "application/json", "utf-8", nil, &typed); err != nil {
		t.Fatal(err)
	}
	if !typed.ETA.Equal(time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)) || typed.Price != "12.50" {
		t.Fatalf("typed = %+v", typed)
	}
}

// kombu53JSON holds every type envelope kombu.utils.json (Kombu >= 5.3)
// writes. Kombu 5.3 is not installed here, so it was made by running Kombu's
// own encoder rules (_as(marker, encoder(o)) from kombu/utils/json.py on the
// main branch) under /usr/bin/python3 with json.dumps:
//
//	_as("datetime", datetime(2024,1,2,3,4,5,123456,tzinfo=timezone.utc).isoformat()), ...
const kombu53JSON = `{"dt": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05.123456+00:00"}, "dt_naive": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05"}, "dt_off": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05+05:30"}, "d": {"__type__": "date", "__value__": "2024-01-02"}, "t": {"__type__": "time", "__value__": "03:04:05.123456"}, "dec": {"__type__": "decimal", "__value__": "12.50"}, "uuid": {"__type__": "uuid", "__value__": {"hex": "6f1c2a5e9a7b4c1d8e2f0a1b2c3d4e5f", "version": 4}}, "bytes": {"__type__": "bytes", "__value__": "hello"}, "b64": {"__type__": "base64", "__value__": "AP8="}}`

func TestKombu53Envelopes(t *testing.T) {
	got, ok := loadsJSON(t, kombu53JSON).(map[string]any)
	if !ok {
		t.Fatalf("not a map: %#v", got)
	}
	ist := time.FixedZone("", 5*3600+30*60)
	wantTimes := map[string]time.Time{
		"dt":       time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC),
		"dt_naive": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		"dt_off":   time.Date(2024, 1, 2, 3, 4, 5, 0, ist),
		"d":        time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
		"t":        time.Date(0, 1, 1, 3, 4, 5, 123456000, time.UTC),
	}
	for k, want := range wantTimes {
		tm, ok := got[k].(time.Time)
		if !ok || !tm.Equal(want) {
			t.Errorf("%s = %#v, want %v", k, got[k], want)
		}
	}
	if _, off := got["dt_off"].(time.Time).Zone(); off != 5*3600+30*60 {
		t.Errorf("dt_off lost its offset: %d", off)
	}
	if got["dec"] != "12.50" {
		t.Errorf("dec = %#v", got["dec"])
	}
	if got["uuid"] != "6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f" {
		t.Errorf("uuid = %#v", got["uuid"])
	}
	if !reflect.DeepEqual(got["bytes"], []byte("hello")) || !reflect.DeepEqual(got["b64"], []byte{0, 0xff}) {
		t.Errorf("bytes = %#v, b64 = %#v", got["bytes"], got["b64"])
	}

	// Typed decoding reads the envelopes as Kombu 5.2's plain forms.
	var typed struct {
		DT      time.Time `json:"dt"`
		DTNaive time.Time `json:"dt_naive"`
		D       string    `json:"d"`
		T       string    `json:"t"`
		Dec     string    `json:"dec"`
		UUID    string    `json:"uuid"`
		Bytes   []byte    `json:"bytes"`
		B64     []byte    `json:"b64"`
	}
	if err := serializer.Default().LoadsInto([]byte(kombu53JSON), "application/json", "utf-8", nil, &typed); err != nil {
		t.Fatal(err)
	}
	if !typed.DT.Equal(wantTimes["dt"]) || !typed.DTNaive.Equal(wantTimes["dt_naive"]) ||
		typed.D != "2024-01-02" || typed.T != "03:04:05.123456" || typed.Dec != "12.50" ||
		typed.UUID != "6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f" ||
		string(typed.Bytes) != "hello" || !reflect.DeepEqual(typed.B64, []byte{0, 0xff}) {
		t.Fatalf("typed = %+v", typed)
	}
}

func TestEnvelopeDetails(t *testing.T) {
	// The version sets the UUID's version nibble and variant, as
	// uuid.UUID(hex=..., version=...) does; dashes and braces are allowed.
	got := loadsJSON(t, `{"__type__": "uuid", "__value__": {"hex": "{00000000-0000-0000-0000-000000000000}", "version": 4}}`)
	if got != "00000000-0000-4000-8000-000000000000" {
		t.Errorf("uuid with version = %v", got)
	}
	got = loadsJSON(t, `{"__type__": "uuid", "__value__": {"hex": "urn:uuid:6F1C2A5E9A7B4C1D8E2F0A1B2C3D4E5F", "version": null}}`)
	if got != "6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f" {
		t.Errorf("uuid without version = %v", got)
	}
	// Nested envelopes decode inside lists and objects.
	got = loadsJSON(t, `[{"when": {"__type__": "date", "__value__": "2024-02-29"}}]`)
	if tm, ok := got.([]any)[0].(map[string]any)["when"].(time.Time); !ok || tm.Day() != 29 {
		t.Errorf("nested = %#v", got)
	}
	// Only objects with exactly the two keys are envelopes.
	got = loadsJSON(t, `{"__type__": "date", "__value__": "2024-02-29", "extra": 1}`)
	if m, ok := got.(map[string]any); !ok || m["__type__"] != "date" {
		t.Errorf("three-key object = %#v", got)
	}
	// A space between date and time, as isoformat(sep=' ') writes.
	got = loadsJSON(t, `{"__type__": "datetime", "__value__": "2024-01-02 03:04:05+00:00"}`)
	if tm, ok := got.(time.Time); !ok || tm.Hour() != 3 {
		t.Errorf("space separator = %#v", got)
	}

	bad := map[string]string{
		"unknown type":      `{"__type__": "complex", "__value__": "1+2j"}`,
		"non-string type":   `{"__type__": 7, "__value__": "x"}`,
		"bad datetime":      `{"__type__": "datetime", "__value__": "yesterday"}`,
		"bad date":          `{"__type__": "date", "__value__": "2024-13-01"}`,
		"bad time":          `{"__type__": "time", "__value__": "25:00"}`,
		"datetime not str":  `{"__type__": "datetime", "__value__": 17}`,
		"uuid not object":   `{"__type__": "uuid", "__value__": "6f1c2a5e9a7b4c1d8e2f0a1b2c3d4e5f"}`,
		"uuid short hex":    `{"__type__": "uuid", "__value__": {"hex": "abc"}}`,
		"uuid bad hex":      `{"__type__": "uuid", "__value__": {"hex": "zz1c2a5e9a7b4c1d8e2f0a1b2c3d4e5f"}}`,
		"uuid bad version":  `{"__type__": "uuid", "__value__": {"hex": "6f1c2a5e9a7b4c1d8e2f0a1b2c3d4e5f", "version": 9}}`,
		"uuid no hex":       `{"__type__": "uuid", "__value__": {}}`,
		"bad base64":        `{"__type__": "base64", "__value__": "!!!"}`,
		"bytes not string":  `{"__type__": "bytes", "__value__": ["h"]}`,
		"nested bad inside": `[1, {"a": {"__type__": "nope", "__value__": 1}}]`,
	}
	for name, body := range bad {
		_, err := serializer.Default().Loads([]byte(body), "application/json", "utf-8", nil)
		if !errors.Is(err, serializer.ErrDecode) {
			t.Errorf("%s: %v, want ErrDecode", name, err)
		}
		var dst any
		if err := serializer.Default().LoadsInto([]byte(body), "application/json", "utf-8", nil, &dst); !errors.Is(err, serializer.ErrDecode) {
			t.Errorf("%s via LoadsInto: %v, want ErrDecode", name, err)
		}
	}
}

func TestJSONNumbers(t *testing.T) {
	got := loadsJSON(t, `[0, -1, 9223372036854775807, -9223372036854775808, 9223372036854775808, 1.0, 1e3, 2.5e-3, 1e400]`)
	want := []any{
		int64(0), int64(-1), int64(9223372036854775807), int64(-9223372036854775808),
		json.Number("9223372036854775808"), 1.0, 1000.0, 0.0025, json.Number("1e400"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("numbers = %#v\nwant %#v", got, want)
	}
}

func TestJSONDecodeErrors(t *testing.T) {
	for name, body := range map[string]string{
		"syntax":        `{"a": }`,
		"trailing data": `{} {}`,
		"trailing junk": `[1] x`,
		"bad utf-8":     "\"\xff\"",
		"NaN":           `NaN`,
		"truncated":     `[1, 2`,
		"too deep":      strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		_, err := serializer.Default().Loads([]byte(body), "application/json", "utf-8", nil)
		var de *serializer.DecodeError
		if !errors.As(err, &de) || de.ContentType != "application/json" {
			t.Errorf("%s: %v, want *DecodeError", name, err)
		}
		var dst any
		if err := serializer.Default().LoadsInto([]byte(body), "application/json", "utf-8", nil, &dst); !errors.Is(err, serializer.ErrDecode) {
			t.Errorf("%s via LoadsInto: %v, want ErrDecode", name, err)
		}
	}
	// Whitespace around the value is fine.
	if got := loadsJSON(t, " \n[1]\n "); !reflect.DeepEqual(got, []any{int64(1)}) {
		t.Fatalf("whitespace: %#v", got)
	}
}
