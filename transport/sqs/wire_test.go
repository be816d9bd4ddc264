package sqs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/transport"
)

// TestEntityNameMatchesKombu: the expected names were printed by Kombu
// 5.2.4's entity_name (kombu/transport/SQS.py, its CHARS_REPLACE_TABLE).
func TestEntityNameMatchesKombu(t *testing.T) {
	for in, want := range map[string]string{
		"celery":                              "celery",
		"celery.pidbox":                       "celery-pidbox",
		"a.b.c.fifo":                          "a-b-c.fifo",
		"x@y:z/w":                             "x_y_z_w",
		"reply.celery.pidbox":                 "reply-celery-pidbox",
		"q!\"#$%&'()*+,/:;<=>?@[\\]^`{|}~-_.": "q_____________________________-_-",
		"héllo.wörld":                         "héllo-wörld",
		".fifo":                               ".fifo",
		"a.fifo.fifo":                         "a-fifo.fifo",
		"tasks.fifo.x":                        "tasks-fifo-x",
	} {
		if got := EntityName(in); got != want {
			t.Errorf("EntityName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBodyRoundTrip(t *testing.T) {
	m := &transport.Message{
		Body: []byte("\x00\xffbinary"), ContentType: "application/x-test", ContentEncoding: "binary",
		Headers:      map[string]any{"task": "t"},
		DeliveryInfo: transport.DeliveryInfo{Exchange: "ex", RoutingKey: "rk", DeliveryTag: "tag-1"},
	}
	for _, b64 := range []bool{true, false} {
		body, err := encodeBody(m, b64)
		if err != nil {
			t.Fatal(err)
		}
		if b64 {
			if _, err := base64.StdEncoding.DecodeString(body); err != nil {
				t.Fatalf("base64 body %q: %v", body, err)
			}
		} else if !strings.HasPrefix(body, "{") {
			t.Fatalf("plain body %q", body)
		}
		got := decodeBody(body)
		if got.Err != nil || !bytes.Equal(got.Body, m.Body) || got.ContentType != m.ContentType ||
			got.Headers["task"] != "t" || got.DeliveryInfo.RoutingKey != "rk" || got.DeliveryInfo.DeliveryTag != "tag-1" {
			t.Fatalf("base64=%v: %+v", b64, got)
		}
	}
}

// TestDecodeBodyNotKombu: bytes that are not an envelope arrive with Err
// set and the bytes as Body, never dropped.
func TestDecodeBodyNotKombu(t *testing.T) {
	for _, body := range []string{"hello", base64.StdEncoding.EncodeToString([]byte("not json")), "{\"a\": 1"} {
		m := decodeBody(body)
		if m.Err == nil || !errors.Is(m.Err, transport.ErrBadEnvelope) || len(m.Body) == 0 {
			t.Errorf("decodeBody(%q) = %+v", body, m)
		}
	}
}

// TestOptionalB64 follows Kombu's _optional_b64_decode: base64 only when
// it encodes back to the same text.
func TestOptionalB64(t *testing.T) {
	if got := optionalB64Decode("aGk="); string(got) != "hi" {
		t.Errorf("aGk= -> %q", got)
	}
	for _, s := range []string{"{}", "aGk", "a b", "aGk=\n"} {
		if got := optionalB64Decode(s); string(got) != s {
			t.Errorf("%q -> %q, want it unchanged", s, got)
		}
	}
}

func TestFIFOIDs(t *testing.T) {
	g, d := fifoIDs(&transport.Message{})
	if g != "default" || len(d) != 36 {
		t.Errorf("defaults: %q %q", g, d)
	}
	g, d = fifoIDs(&transport.Message{Properties: transport.Properties{Extra: map[string]any{
		"MessageGroupId": "grp", "MessageDeduplicationId": "dedup"}}})
	if g != "grp" || d != "dedup" {
		t.Errorf("from properties: %q %q", g, d)
	}
}

func FuzzDecodeBody(f *testing.F) {
	m := &transport.Message{Body: []byte("x"), Headers: map[string]any{"a": 1.5}}
	b, _ := encodeBody(m, true)
	f.Add(b)
	p, _ := encodeBody(m, false)
	f.Add(p)
	f.Add("")
	f.Add("=====")
	f.Fuzz(func(t *testing.T, s string) {
		got := decodeBody(s)
		if got == nil {
			t.Fatal("nil message")
		}
		if got.Err != nil {
			return
		}
		// What decodes encodes again and decodes to the same message.
		again, err := encodeBody(got, true)
		if err != nil {
			return // values JSON cannot carry are refused at encode
		}
		back := decodeBody(again)
		if back.Err != nil || !bytes.Equal(back.Body, got.Body) || back.ContentType != got.ContentType {
			t.Fatalf("round trip of %q: %+v vs %+v", s, back, got)
		}
	})
}
