package envelope

import (
	"bytes"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// benchMessage is one of kombu bench --batch's messages: a small JSON body
// to a queue through the default exchange, no headers.
func benchMessage(i int) *Message {
	return &Message{
		Body:            []byte(`{"i":` + strconv.Itoa(i) + `,"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Properties:      Properties{DeliveryMode: 2},
		DeliveryInfo:    DeliveryInfo{RoutingKey: "bench-queue", DeliveryTag: "0e206b75-c390-4bed-a4ef-1c3f40cb" + strconv.Itoa(1000+i%9000)},
	}
}

// middleChanges change, one at a time, every field that the envelope's
// middle is made of.
var middleChanges = map[string]func(m *Message){
	"ContentType":     func(m *Message) { m.ContentType = "text/plain" },
	"ContentEncoding": func(m *Message) { m.ContentEncoding = "binary" },
	"Headers":         func(m *Message) { m.Headers = map[string]any{"h": "v"} },
	"Exchange":        func(m *Message) { m.DeliveryInfo.Exchange = "ex" },
	"RoutingKey":      func(m *Message) { m.DeliveryInfo.RoutingKey = "other" },
	"Redelivered":     func(m *Message) { m.DeliveryInfo.Redelivered = true },
	"CorrelationID":   func(m *Message) { m.Properties.CorrelationID = "cid" },
	"ReplyTo":         func(m *Message) { m.Properties.ReplyTo = "rq" },
	"MessageID":       func(m *Message) { m.Properties.MessageID = "mid" },
	"Type":            func(m *Message) { m.Properties.Type = "t" },
	"AppID":           func(m *Message) { m.Properties.AppID = "app" },
	"UserID":          func(m *Message) { m.Properties.UserID = "u" },
	"Timestamp":       func(m *Message) { m.Properties.Timestamp = time.Unix(1700000000, 500000000) },
	"DeliveryMode":    func(m *Message) { m.Properties.DeliveryMode = 1 },
	"Expiration":      func(m *Message) { m.Properties.Expiration = "10000" },
	"Priority":        func(m *Message) { m.Properties.Priority = 3 },
	"Extra":           func(m *Message) { m.Properties.Extra = map[string]any{"x-custom": 1} },
}

// TestEncoderMatchesAppend encodes runs of messages with one Encoder and
// compares each envelope with Append's: the same message again (the
// cached middle), then each field changed (a new middle), then back.
func TestEncoderMatchesAppend(t *testing.T) {
	// Every field of the middle must be in middleChanges: a new field
	// of Message, Properties or DeliveryInfo has to be added there (and
	// to sameMiddle).
	known := map[string]bool{"Body": true, "Properties": true, "DeliveryInfo": true, "DeliveryTag": true}
	for _, typ := range []reflect.Type{reflect.TypeFor[Message](), reflect.TypeFor[Properties](), reflect.TypeFor[DeliveryInfo]()} {
		for f := range typ.Fields() {
			if !known[f.Name] && middleChanges[f.Name] == nil {
				t.Errorf("%s.%s is not covered by middleChanges", typ.Name(), f.Name)
			}
		}
	}
	for _, enc := range []string{BodyBase64, BodyUTF8, ""} {
		e := NewEncoder(enc)
		check := func(name string, m *Message) {
			t.Helper()
			want, werr := Append(nil, m, enc)
			got, gerr := e.Append([]byte("prefix"), m)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("%s/%s: error %v, Append's %v", enc, name, gerr, werr)
			}
			if werr == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("%s/%s:\n got %s\nwant prefix%s", enc, name, got, want)
			}
		}
		for i := range 3 {
			check("same", benchMessage(i))
		}
		for name, change := range middleChanges {
			m := benchMessage(7)
			change(m)
			check(name, m)
			check(name+" again", m)
			check(name+" then back", benchMessage(8))
		}
	}
}

// TestEncoderErrors: a failed message leaves dst as it was, and the next
// message is written whole and right.
func TestEncoderErrors(t *testing.T) {
	e := NewEncoder(BodyUTF8)
	dst := []byte("keep")
	bad := benchMessage(1)
	bad.Body = []byte{0xff}
	if got, err := e.Append(dst, bad); err == nil || string(got) != "keep" {
		t.Fatalf("invalid UTF-8 body: %q, %v", got, err)
	}
	nan := benchMessage(2)
	nan.Headers = map[string]any{"n": 0.0}
	nan.Headers["n"] = func() float64 { var z float64; return z / z }()
	if got, err := e.Append(dst, nan); err == nil || string(got) != "keep" {
		t.Fatalf("NaN header: %q, %v", got, err)
	}
	m := benchMessage(3)
	want, _ := Append(nil, m, BodyUTF8)
	if got, err := e.Append(nil, m); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after errors: %s, %v; want %s", got, err, want)
	}
	e.Reset("gzip")
	if _, err := e.Append(nil, m); err == nil {
		t.Fatal("unknown body encoding accepted after Reset")
	}
}

// BenchmarkEncodeEnvelopeBatch is Append over kombu bench's messages, and
// BenchmarkEncoderBatch the same through one Encoder.
func BenchmarkEncodeEnvelopeBatch(b *testing.B) {
	msgs := benchMessages()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf, _ = Append(buf[:0], msgs[i%len(msgs)], BodyBase64)
		i++
	}
}

func BenchmarkEncoderBatch(b *testing.B) {
	msgs := benchMessages()
	buf := make([]byte, 0, 1024)
	e := NewEncoder(BodyBase64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf, _ = e.Append(buf[:0], msgs[i%len(msgs)])
		i++
	}
}

func benchMessages() []*Message {
	msgs := make([]*Message, 100)
	for i := range msgs {
		msgs[i] = benchMessage(i)
	}
	return msgs
}
