package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The envelopes below were produced by Debian's python3-kombu 5.2.4 with
// redis-py 4.3.4 (Producer.publish, then LRANGE of the queue's keys).
const (
	// publish({'hello':'world','n':1,'u':'é'}, exchange=Exchange('myex'),
	// routing_key='rk', priority=5, expiration=10, correlation_id='cid',
	// reply_to='rq', headers={'h1':'v'}): the kombu-spec §1.4 example.
	pyExample = `{"body": "eyJoZWxsbyI6ICJ3b3JsZCIsICJuIjogMSwgInUiOiAiXHUwMGU5In0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"h1": "v"}, "properties": {"correlation_id": "cid", "reply_to": "rq", "delivery_mode": 2, "expiration": "10000", "delivery_info": {"exchange": "myex", "routing_key": "rk"}, "priority": 5, "body_encoding": "base64", "delivery_tag": "0e206b75-c390-4bed-a4ef-1c3f40cb2020"}}`
	// publish('héllo\n"x"', headers={'a': [1, 2.5, None, True, {'z': 'é😀'}],
	// 'b': 1e16, 'c': 1e-5, 'd': 0.1}).
	pyHeaders = `{"body": "aMOpbGxvCiJ4Ig==", "content-encoding": "utf-8", "content-type": "text/plain", "headers": {"a": [1, 2.5, null, true, {"z": "\u00e9\ud83d\ude00"}], "b": 1e+16, "c": 1e-05, "d": 0.1}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "myex_t14", "routing_key": "rk"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "0689b8b8-61b7-40ec-ac0a-d63d398e10bd"}}`
	// publish(b'\x00\xff', compression='zlib').
	pyZlib = `{"body": "eJxj+A8AAQEBAA==", "content-encoding": "binary", "content-type": "application/data", "headers": {"compression": "application/x-gzip"}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "myex_t14", "routing_key": "rk"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "06230c6e-c796-4ae5-9ce9-a6c5898f0057"}}`
)

func TestEncodeEnvelopeMatchesKombuByteForByte(t *testing.T) {
	cases := []struct {
		name string
		m    *Message
		want string
	}{
		{"spec example", &Message{
			Body:            []byte(`{"hello": "world", "n": 1, "u": "\u00e9"}`),
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
			Headers:         map[string]any{"h1": "v"},
			Properties: Properties{CorrelationID: "cid", ReplyTo: "rq", Expiration: "10000",
				Priority: 5},
			DeliveryInfo: DeliveryInfo{Exchange: "myex", RoutingKey: "rk",
				DeliveryTag: "0e206b75-c390-4bed-a4ef-1c3f40cb2020"},
		}, pyExample},
		{"header types", &Message{
			Body:            []byte("héllo\n\"x\""),
			ContentType:     "text/plain",
			ContentEncoding: "utf-8",
			Headers: map[string]any{"a": []any{int64(1), 2.5, nil, true, map[string]any{"z": "é😀"}},
				"b": 1e16, "c": 1e-5, "d": 0.1},
			DeliveryInfo: DeliveryInfo{Exchange: "myex_t14", RoutingKey: "rk",
				DeliveryTag: "0689b8b8-61b7-40ec-ac0a-d63d398e10bd"},
		}, pyHeaders},
		{"zlib binary", &Message{
			Body:            []byte{0x78, 0x9c, 0x63, 0xf8, 0x0f, 0x00, 0x01, 0x01, 0x01, 0x00},
			ContentType:     "application/data",
			ContentEncoding: "binary",
			Headers:         map[string]any{"compression": "application/x-gzip"},
			Properties:      Properties{DeliveryMode: 2},
			DeliveryInfo: DeliveryInfo{Exchange: "myex_t14", RoutingKey: "rk",
				DeliveryTag: "06230c6e-c796-4ae5-9ce9-a6c5898f0057"},
		}, pyZlib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Encode(c.m, "base64")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestEncodeEnvelopeOptionalParts(t *testing.T) {
	m := &Message{
		Body: []byte("plain é"),
		Properties: Properties{
			MessageID: "mid", Type: "t", AppID: "app", UserID: "u",
			Timestamp:    time.Unix(1700000000, 0),
			DeliveryMode: 1,
			Extra:        map[string]any{"zz": int64(3), "aa": []string{"x"}, "priority": "ignored"},
		},
		DeliveryInfo: DeliveryInfo{Exchange: "", RoutingKey: "q", Redelivered: true, DeliveryTag: "tag"},
	}
	got, err := Encode(m, "utf-8")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"body": "plain \u00e9", "content-encoding": null, "content-type": null, "headers": {}, ` +
		`"properties": {"message_id": "mid", "type": "t", "app_id": "app", "user_id": "u", "timestamp": 1700000000, ` +
		`"aa": ["x"], "zz": 3, "delivery_mode": 1, "delivery_info": {"exchange": "", "routing_key": "q", "redelivered": true}, ` +
		`"priority": 0, "body_encoding": "utf-8", "delivery_tag": "tag"}}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	got, err = Encode(&Message{Body: []byte("x")}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"body": "x"`) || !strings.Contains(string(got), `"body_encoding": null`) {
		t.Errorf("empty body encoding: %s", got)
	}
}

func TestEncodeEnvelopeErrors(t *testing.T) {
	cases := []struct {
		name string
		m    *Message
		enc  string
	}{
		{"unknown codec", &Message{}, "rot13"},
		{"binary body as utf-8", &Message{Body: []byte{0xff}}, "utf-8"},
		{"NaN header", &Message{Headers: map[string]any{"x": math.NaN()}}, "base64"},
		{"Inf property", &Message{Properties: Properties{Extra: map[string]any{"x": math.Inf(1)}}}, "base64"},
		{"channel header", &Message{Headers: map[string]any{"x": make(chan int)}}, "base64"},
	}
	for _, c := range cases {
		dst := []byte("keep")
		out, err := Append(dst, c.m, c.enc)
		if err == nil {
			t.Errorf("%s: no error", c.name)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q", c.name, out)
		}
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	if _, err := Encode(&Message{Headers: cyclic}, "base64"); err == nil {
		t.Error("cyclic headers: no error")
	}
}

func TestPyFloatAndString(t *testing.T) {
	// Python 3.11: repr(f) and json.dumps(s).
	floats := map[float64]string{
		1.0: "1.0", 0.1: "0.1", 1e16: "1e+16", 1e15: "1000000000000000.0",
		123456789012345678.0: "1.2345678901234568e+17", 1e-5: "1e-05", 0.0001: "0.0001",
		math.Copysign(0, -1): "-0.0", 1.5e300: "1.5e+300", 2.5: "2.5", 1.0 / 3: "0.3333333333333333",
		5e-324: "5e-324", 1e22: "1e+22", 12345.678: "12345.678",
	}
	for f, want := range floats {
		got, err := appendPyFloat(nil, f)
		if err != nil || string(got) != want {
			t.Errorf("appendPyFloat(%v) = %q, %v; want %q", f, got, err, want)
		}
	}
	s := "a\x00\x1f\x7f\u0080é\u2028/<>&\t\b\f\r\n\"\\"
	want := `"a\u0000\u001f\u007f\u0080\u00e9\u2028/<>&\t\b\f\r\n\"\\"`
	if got := appendPyString(nil, s); string(got) != want {
		t.Errorf("appendPyString = %s, want %s", got, want)
	}
	if got := appendPyString(nil, "\xff😀"); string(got) != `"\ufffd\ud83d\ude00"` {
		t.Errorf("invalid UTF-8 and astral: %s", got)
	}
}

func TestPyB64Decode(t *testing.T) {
	// Python 3.11: base64.b64decode(s.encode()).
	ok := map[string]string{
		"YWJj": "abc", "YWJjZA==": "abcd", "YW Jj\nZA==": "abcd", "YQ==YQ==": "a",
		"YWJj=": "abc", "-_-_": "", "YW=Jj": "abc", "": "", "====": "", "YQ=x==": "a\x0c", "é": "",
	}
	for in, want := range ok {
		got, err := pyB64Decode([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("pyB64Decode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"YWJjZA", "YWJjZA=", "Y", "YWJjZ", "YQ"} {
		if got, err := pyB64Decode([]byte(in)); err == nil {
			t.Errorf("pyB64Decode(%q) = %q, want an error", in, got)
		}
	}
}

func TestDecodeEnvelopeKombu(t *testing.T) {
	m, err := Decode([]byte(pyExample))
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{
		Body:            []byte(`{"hello": "world", "n": 1, "u": "\u00e9"}`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Headers:         map[string]any{"h1": "v"},
		Properties: Properties{CorrelationID: "cid", ReplyTo: "rq", Expiration: "10000",
			Priority: 5, DeliveryMode: 2},
		DeliveryInfo: DeliveryInfo{Exchange: "myex", RoutingKey: "rk",
			DeliveryTag: "0e206b75-c390-4bed-a4ef-1c3f40cb2020"},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %+v\nwant %+v", m, want)
	}

	m, err = Decode([]byte(pyHeaders))
	if err != nil {
		t.Fatal(err)
	}
	wantH := map[string]any{"a": []any{int64(1), 2.5, nil, true, map[string]any{"z": "é😀"}},
		"b": 1e16, "c": 1e-5, "d": 0.1}
	if !reflect.DeepEqual(m.Headers, wantH) || string(m.Body) != "héllo\n\"x\"" {
		t.Errorf("headers %#v body %q", m.Headers, m.Body)
	}
	// Re-encoding a Python envelope gives Python's bytes back.
	again, err := Encode(m, "base64")
	if err != nil || string(again) != pyHeaders {
		t.Errorf("re-encoded:\n%s\n%v", again, err)
	}
}

func TestDecodeEnvelopeLenient(t *testing.T) {
	const tag = `"delivery_tag":"t"`
	cases := []struct {
		name  string
		in    string
		check func(*Message) bool
	}{
		{"compact, no body_encoding", `{"body":"hi","properties":{"delivery_tag":"t"}}`,
			func(m *Message) bool { return string(m.Body) == "hi" && m.DeliveryInfo.DeliveryTag == "t" }},
		{"utf-8 body", `{"body":"hé","properties":{"body_encoding":"UTF-8",` + tag + `}}`,
			func(m *Message) bool { return string(m.Body) == "hé" }},
		{"null body_encoding", `{"body":"x","properties":{"body_encoding":null,` + tag + `}}`,
			func(m *Message) bool { return string(m.Body) == "x" }},
		{"lenient base64", `{"body":"YW\nJj ZA==garbage","properties":{"body_encoding":"base64",` + tag + `}}`,
			func(m *Message) bool { return string(m.Body) == "abcd" }},
		{"empty base64 body", `{"body":"","properties":{"body_encoding":"base64",` + tag + `}}`,
			func(m *Message) bool { return len(m.Body) == 0 }},
		{"only body and tag", `{"body":"x","properties":{` + tag + `}}`,
			func(m *Message) bool {
				return m.Properties.DeliveryMode == 2 && m.DeliveryInfo == DeliveryInfo{DeliveryTag: "t"}
			}},
		{"top-level redelivered", `{"body":"x","redelivered":true,"properties":{` + tag + `}}`,
			func(m *Message) bool { return m.DeliveryInfo.Redelivered }},
		{"headers redelivered", `{"body":"x","headers":{"redelivered":true},"properties":{` + tag + `}}`,
			func(m *Message) bool { return m.DeliveryInfo.Redelivered }},
		{"delivery_info redelivered",
			`{"body":"","properties":{"delivery_info":{"exchange":"e","routing_key":"k","redelivered":true},` + tag + `}}`,
			func(m *Message) bool {
				return m.DeliveryInfo.Redelivered && m.DeliveryInfo.Exchange == "e" && m.DeliveryInfo.RoutingKey == "k"
			}},
		{"null delivery_info fields", `{"body":"","properties":{"delivery_info":{"exchange":null,"routing_key":"k"},` + tag + `}}`,
			func(m *Message) bool { return m.DeliveryInfo.Exchange == "" && m.DeliveryInfo.RoutingKey == "k" }},
		{"not redelivered", `{"body":"","redelivered":false,"headers":{"redelivered":"yes"},"properties":{` + tag + `}}`,
			func(m *Message) bool { return !m.DeliveryInfo.Redelivered }},
		{"unknown properties in Extra",
			`{"body":"","properties":{"x-custom":{"k":[1,2.5]},"correlation_id":7,"timestamp":"2024","priority":3,` + tag + `}}`,
			func(m *Message) bool {
				return reflect.DeepEqual(m.Properties.Extra, map[string]any{
					"x-custom": map[string]any{"k": []any{int64(1), 2.5}}, "correlation_id": int64(7),
					"timestamp": "2024"}) && m.Properties.Priority == 3
			}},
		{"kombu 5.3 __type__ left as data",
			`{"body":"","headers":{"eta":{"__type__":"datetime","__value__":"2024-01-01T00:00:00"}},"properties":{` + tag + `}}`,
			func(m *Message) bool {
				return reflect.DeepEqual(m.Headers["eta"],
					map[string]any{"__type__": "datetime", "__value__": "2024-01-01T00:00:00"})
			}},
		{"float timestamp", `{"body":"","properties":{"timestamp":1700000000.25,` + tag + `}}`,
			func(m *Message) bool { return m.Properties.Timestamp.Equal(time.Unix(1700000000, 250000000)) }},
		{"odd numbers for priority and delivery_mode", `{"body":"","properties":{"priority":2.5,"delivery_mode":7.5,` + tag + `}}`,
			func(m *Message) bool { return m.Properties.Priority == 0 && m.Properties.DeliveryMode == 2 }},
		{"null priority and delivery_mode", `{"body":"","properties":{"priority":null,"delivery_mode":null,` + tag + `}}`,
			func(m *Message) bool { return m.Properties.Priority == 0 && m.Properties.DeliveryMode == 2 }},
		{"numeric delivery tag", `{"body":"","properties":{"delivery_tag":42}}`,
			func(m *Message) bool { return m.DeliveryInfo.DeliveryTag == "42" }},
		{"big integer header", `{"body":"","headers":{"n":123456789012345678901234567890},"properties":{` + tag + `}}`,
			func(m *Message) bool { return m.Headers["n"] == 1.2345678901234568e29 }},
		{"escaped lone surrogate", `{"body":"\ud800x","properties":{` + tag + `}}`,
			func(m *Message) bool { return string(m.Body) == "\uFFFDx" }},
	}
	for _, c := range cases {
		m, err := Decode([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(m) {
			t.Errorf("%s: unexpected %+v", c.name, m)
		}
	}
}

// TestDecodeEnvelopeNotKombu is the envelope half of the bad-input table
// (the README's "Bad input and failures"): each of these is an error, so a
// transport delivers it as a decode error and never as a message. The
// comment says what Kombu 5.x does with the same bytes on Redis.
func TestDecodeEnvelopeNotKombu(t *testing.T) {
	const props = `"properties": {"delivery_tag": "t"}`
	for _, c := range []struct{ name, in, kombu string }{
		{"raw non-JSON", `hello`, "JSONDecodeError in the poller, message lost"},
		{"empty", ``, "JSONDecodeError, lost"},
		{"{}", `{}`, "KeyError 'properties', lost"},
		{"JSON without Kombu's fields", `{"task": "add", "args": [1, 2]}`, "KeyError 'properties', lost"},
		{"no body", `{` + props + `}`, "delivered with body None"},
		{"null body", `{"body": null, ` + props + `}`, "delivered with body None"},
		{"object body", `{"body": {"a": 1}, ` + props + `}`, "delivered; decode fails (json.loads of a dict)"},
		{"no properties", `{"body": "x"}`, "KeyError 'properties', lost"},
		{"null properties", `{"body": "x", "properties": null}`, "TypeError, lost"},
		{"no delivery_tag", `{"body": "x", "properties": {"priority": 0}}`, "KeyError 'delivery_tag', lost"},
		{"empty delivery_tag", `{"body": "x", "properties": {"delivery_tag": ""}}`, "delivered with tag ''"},
		{"null delivery_tag", `{"body": "x", "properties": {"delivery_tag": null}}`, "delivered with tag None"},
		{`priority "high"`, `{"body": "x", "properties": {"priority": "high", "delivery_tag": "t"}}`,
			"delivered (priority is not read on consume)"},
		{`delivery_mode "2"`, `{"body": "x", "properties": {"delivery_mode": "2", "delivery_tag": "t"}}`, "delivered"},
		{"numeric exchange", `{"body": "x", "properties": {"delivery_info": {"exchange": 1}, "delivery_tag": "t"}}`, "delivered"},
		{"bad base64", `{"body": "YQ", "properties": {"body_encoding": "base64", "delivery_tag": "t"}}`,
			"binascii.Error in the poller, lost"},
		{"unknown body_encoding", `{"body": "x", "properties": {"body_encoding": "rot13", "delivery_tag": "t"}}`,
			"delivered undecoded (unknown codecs are ignored)"},
		{"invalid UTF-8", "{\"body\": \"\xff\xfe\", " + props + "}", "UnicodeDecodeError in the poller, lost"},
		{"headers not an object", `{"body": "x", "headers": [], ` + props + `}`, "delivered; headers is a list"},
		{"truncated", `{"body": "eyJh`, "JSONDecodeError, lost"},
	} {
		m, err := Decode([]byte(c.in))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode(%q) = %+v, %v; want ErrMalformed (Kombu: %s)", c.name, c.in, m, err, c.kombu)
		}
	}
}

func TestDecodeEnvelopeMalformed(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `"x"`, `{`, `{"body": "x"} trailing`, `{"headers": []}`,
		`{"headers": "x"}`, `{"properties": [1]}`, `{"properties": {"delivery_info": 5}}`,
		`{"body": "YQ", "properties": {"body_encoding": "base64"}}`,
		`{"body": "x", "properties": {"body_encoding": "rot13"}}`,
		`{"body": "x", "properties": {"body_encoding": 5}}`,
		`{"body": [1], "properties": {"body_encoding": "base64"}}`,
		`{"content-type": 5}`, `{"content-encoding": {}}`,
		`{"headers": {"x": 1e999}}`,
		"\xff\xfe", "{}\x00", // found by FuzzDecodeEnvelope
	} {
		m, err := Decode([]byte(in))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %+v, %v; want ErrMalformed", in, m, err)
		}
	}
}

// TestExtraStringPropertyRoundTrip checks that a property kept in Extra
// because its type did not fit comes back in the same place.
func TestExtraStringPropertyRoundTrip(t *testing.T) {
	in := `{"body": "", "content-encoding": null, "content-type": null, "headers": {}, "properties": {"correlation_id": 7, "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": ""}, "priority": 0, "body_encoding": "base64", "delivery_tag": "t"}}`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Encode(m, "base64")
	if err != nil || string(out) != in {
		t.Errorf("got\n%s\n%v", out, err)
	}
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	m, err := Decode([]byte(pyExample))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		if buf, err = Append(buf[:0], m, "base64"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode([]byte(pyExample)); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range []string{pyExample, pyHeaders, pyZlib,
		`{"body":"hi"}`, `{"body":{"a":[1,2]},"redelivered":true}`,
		`{"properties":{"timestamp":1.5,"x":[{"y":null}],"correlation_id":false}}`,
		`{"body":"YQ=x==","properties":{"body_encoding":"base64","delivery_tag":3}}`,
		`{"headers":{"redelivered":true,"s":"\ud800\u00e9"}}`, `[`, `{"headers":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m1, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, enc := range []string{"base64", "utf-8"} {
			if enc == "utf-8" && !utf8.Valid(m1.Body) {
				// utf-8 needs a text body; only check it for valid text.
				continue
			}
			out, err := Encode(m1, enc)
			if err != nil {
				t.Fatalf("encode(decode(%q)): %v", data, err)
			}
			m2, err := Decode(out)
			if err != nil {
				t.Fatalf("decode(encode(decode(%q))) = %v\n%s", data, err, out)
			}
			if d := m1.Properties.Timestamp.Sub(m2.Properties.Timestamp); d > time.Microsecond || d < -time.Microsecond {
				t.Fatalf("timestamp %v became %v", m1.Properties.Timestamp, m2.Properties.Timestamp)
			}
			m2.Properties.Timestamp = m1.Properties.Timestamp
			if len(m1.Body) == 0 && len(m2.Body) == 0 {
				m2.Body = m1.Body
			}
			if !reflect.DeepEqual(m1, m2) {
				t.Fatalf("round trip (%s) of %q:\n%+v\n%+v\n%s", enc, data, m1, m2, out)
			}
		}
	})
}

func TestMarkRedelivered(t *testing.T) {
	out, err := MarkRedelivered([]byte(pyExample))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if !m.DeliveryInfo.Redelivered || m.Headers["redelivered"] != true || m.Headers["h1"] != "v" ||
		m.DeliveryInfo.DeliveryTag != "0e206b75-c390-4bed-a4ef-1c3f40cb2020" || m.Properties.Priority != 5 {
		t.Errorf("marked: %+v", m)
	}
	if !strings.Contains(string(out), `"delivery_info": {"exchange": "myex", "routing_key": "rk", "redelivered": true}`) ||
		!strings.Contains(string(out), `"body_encoding": "base64"`) {
		t.Errorf("marked envelope %s", out)
	}
	// A utf-8 body stays a utf-8 body.
	out, err = MarkRedelivered([]byte(`{"body": "hé", "headers": null, "properties": {"body_encoding": "utf-8"}}`))
	if err != nil || !strings.Contains(string(out), `"body": "h\u00e9"`) || !strings.Contains(string(out), `"headers": {"redelivered": true}`) {
		t.Errorf("utf-8: %s %v", out, err)
	}
	if _, err := MarkRedelivered([]byte("nope")); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

// MarkRedelivered used to decode and re-encode the envelope, turning
// integers outside int64 into floats and dropping unknown keys; Kombu's
// restore (load, set two flags, dump) keeps them.
func TestMarkRedeliveredKeepsNumbersAndUnknownKeys(t *testing.T) {
	env := []byte(`{"body": "aGk=", "content-encoding": "utf-8", "content-type": "text/plain", "headers": {"big": 12345678901234567891, "b53": 9007199254740993, "neg": -9223372036854775809, "f": 1.0, "s": "\u00e9"}, "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "q"}, "delivery_mode": 2, "delivery_tag": "t", "priority": 0, "correlation_id": "c", "custom": [1,2]}, "extra_top": 1}`)
	out, err := MarkRedelivered(env)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"body": "aGk=", "content-encoding": "utf-8", "content-type": "text/plain", "headers": {"big": 12345678901234567891, "b53": 9007199254740993, "neg": -9223372036854775809, "f": 1.0, "s": "\u00e9", "redelivered": true}, "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "q", "redelivered": true}, "delivery_mode": 2, "delivery_tag": "t", "priority": 0, "correlation_id": "c", "custom": [1, 2]}, "extra_top": 1}`
	if string(out) != want {
		t.Errorf("MarkRedelivered gave\n%s\nwant\n%s", out, want)
	}
	m, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if !m.DeliveryInfo.Redelivered || m.Headers["redelivered"] != true || string(m.Body) != "hi" {
		t.Errorf("decoded: redelivered %v, headers %v, body %q", m.DeliveryInfo.Redelivered, m.Headers, m.Body)
	}
	// Flags already set stay in place; missing or null objects are created.
	for _, c := range []struct{ in, want string }{
		{`{"body": "", "headers": {"redelivered": false, "a": 1}, "properties": {"delivery_info": {"redelivered": false}}}`,
			`{"body": "", "headers": {"redelivered": true, "a": 1}, "properties": {"delivery_info": {"redelivered": true}}}`},
		{`{"body": "", "headers": null, "properties": {}}`,
			`{"body": "", "headers": {"redelivered": true}, "properties": {"delivery_info": {"redelivered": true}}}`},
		{`{"body":"","a":1,"a":2}`,
			`{"body": "", "a": 2, "headers": {"redelivered": true}, "properties": {"delivery_info": {"redelivered": true}}}`},
	} {
		out, err := MarkRedelivered([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(out) != c.want {
			t.Errorf("%s: got %s, want %s", c.in, out, c.want)
		}
	}
	if _, err := MarkRedelivered([]byte(`hello`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-JSON: err %v, want ErrMalformed", err)
	}
}

// FuzzMarkRedelivered: every envelope Decode accepts is marked, and
// the result decodes to the same message with the two flags set; what
// MarkRedelivered marks beyond those (JSON objects that are not Kombu
// messages) comes out as JSON.
func FuzzMarkRedelivered(f *testing.F) {
	for _, s := range []string{pyExample, pyHeaders, pyZlib, `{"body":"hi"}`, `{"body": "h\u00e9 \ud83d\ude00", "x" : [1 ,{"a":"é"}]}`,
		`{"headers":{"redelivered":true,"s":"\ud800\u00e9"}}`, `{"headers":null,"properties":{"delivery_info":null}}`,
		`{"body":"YQ=x==","properties":{"body_encoding":"base64","delivery_tag":3}}`, `[`, `{"headers":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m1, err := Decode(data)
		out, merr := MarkRedelivered(data)
		if merr != nil {
			if !errors.Is(merr, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", merr)
			}
			if err == nil {
				t.Fatalf("Decode accepts %q, MarkRedelivered does not: %v", data, merr)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("MarkRedelivered(%q) = %q, not JSON", data, out)
		}
		if err != nil {
			// Not a Kombu message, marked anyway (a restore puts back
			// whatever it finds, as Kombu's does).
			return
		}
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("decode(mark(%q)) = %v\n%s", data, err, out)
		}
		if !m2.DeliveryInfo.Redelivered || m2.Headers["redelivered"] != true {
			t.Fatalf("mark(%q) = %s: not marked", data, out)
		}
		m1.DeliveryInfo.Redelivered = true
		if m1.Headers == nil {
			m1.Headers = map[string]any{}
		}
		m1.Headers["redelivered"] = true
		if !bytes.Equal(m1.Body, m2.Body) {
			// A body that is not a string is its JSON text, which the
			// mark lays out the way json.dumps does (as Kombu's does).
			v1, err1 := decodeJSONValue(m1.Body)
			v2, err2 := decodeJSONValue(m2.Body)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(v1, v2) {
				t.Fatalf("mark(%q) changed the body %q to %q", data, m1.Body, m2.Body)
			}
			m2.Body = m1.Body
		}
		if !reflect.DeepEqual(m1, m2) {
			t.Fatalf("mark(%q) changed the message:\n%+v\n%+v\n%s", data, m1, m2, out)
		}
	})
}

// plain must agree with the byte-by-byte rule for every byte value at
// every position of a word and of the tail.
func TestPlainScan(t *testing.T) {
	slow := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
				return false
			}
		}
		return true
	}
	for n := 1; n <= 17; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte("a"), n)
				b[pos] = byte(c)
				if got, want := plain(b), slow(b); got != want {
					t.Fatalf("plain(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// BenchmarkDecodeEnvelope20MB decodes the envelope of a 20 MiB body
// (27 MiB of base64), which a Redis consumer does on the hub.
func BenchmarkDecodeEnvelope20MB(b *testing.B) {
	m := &Message{Body: bytes.Repeat([]byte("0123456789"), 2<<20), ContentType: "application/json",
		ContentEncoding: "utf-8", DeliveryInfo: DeliveryInfo{DeliveryTag: "t"}}
	env, err := Encode(m, BodyBase64)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		if _, err := Decode(env); err != nil {
			b.Fatal(err)
		}
	}
}
