package amqp

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func runPython(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	py := python(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/" + script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", script, err, stderr.String())
	}
	return out
}

func zlibBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestInteropPythonToGo: a Python Kombu Producer publishes; the Go
// transport consumes and finds Kombu's body, properties and headers.
func TestInteropPythonToGo(t *testing.T) {
	python(t)
	e := dial(t, nil)
	ch := e.channel()
	ex := uniq("py-ex")
	if err := ch.DeclareExchange(ctxT(t), transport.Exchange{Name: ex, Type: transport.Direct}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.channel().DeleteExchange(cleanupCtx(t), ex, false) })
	q := e.queue(ch, transport.Queue{})
	if err := ch.BindQueue(ctxT(t), transport.Binding{Queue: q, Exchange: ex, RoutingKey: "rk"}); err != nil {
		t.Fatal(err)
	}
	if out := runPython(t, "kombu_publish.py", brokerURL(t), ex, q, "rk"); strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python said %q", out)
	}
	col := newCollector()
	if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	m := col.next(t)
	var body map[string]any
	if err := json.Unmarshal(m.Body, &body); err != nil {
		t.Fatalf("body %q: %v", m.Body, err)
	}
	if !reflect.DeepEqual(body, map[string]any{"hello": "world", "n": 1.0, "list": []any{1.0, "two", nil}}) {
		t.Errorf("body: %#v", body)
	}
	if m.ContentType != "application/json" || m.ContentEncoding != "utf-8" {
		t.Errorf("content: %q %q", m.ContentType, m.ContentEncoding)
	}
	wantHeaders := map[string]any{"h1": "v", "num": int64(7), "big": int64(1) << 40, "ratio": 0.5, "flag": true,
		"none": nil, "nested": map[string]any{"a": []any{int64(1), int64(2)}, "b": map[string]any{"c": "d"}}}
	if !reflect.DeepEqual(m.Headers, wantHeaders) {
		t.Errorf("headers:\n got %#v\nwant %#v", m.Headers, wantHeaders)
	}
	p := m.Properties
	if p.Priority != 5 || p.CorrelationID != "c-1" || p.ReplyTo != "reply-q" || p.MessageID != "m-1" ||
		p.Type != "task" || p.AppID != "py-app" || p.UserID != "guest" || p.Expiration != "60000" ||
		p.DeliveryMode != 2 || p.Timestamp.Unix() != 1700000000 {
		t.Errorf("properties: %+v", p)
	}
	if m.DeliveryInfo.Exchange != ex || m.DeliveryInfo.RoutingKey != "rk" {
		t.Errorf("delivery info: %+v", m.DeliveryInfo)
	}
	ch.Ack(m.DeliveryInfo.DeliveryTag)

	c := col.next(t)
	if c.Headers["compression"] != "application/x-gzip" {
		t.Fatalf("compression header: %#v", c.Headers)
	}
	r, err := zlib.NewReader(bytes.NewReader(c.Body))
	if err != nil {
		t.Fatalf("compressed body is not zlib: %v", err)
	}
	plain, _ := io.ReadAll(r)
	if string(plain) != `{"z": "compressed"}` || c.Properties.MessageID != "m-2" {
		t.Errorf("decompressed %q, message id %q", plain, c.Properties.MessageID)
	}
	ch.Ack(c.DeliveryInfo.DeliveryTag)
	waitDepth(t, ch, q, 0)
}

// TestInteropGoToPython: the Go transport publishes as Kombu would; a Python
// Kombu Consumer decodes the payloads (decompressing the zlib one) and
// reports properties and headers as JSON.
func TestInteropGoToPython(t *testing.T) {
	python(t)
	e := dial(t, nil)
	ch := e.channel()
	q := e.queue(ch, transport.Queue{})
	m := &transport.Message{
		Body: []byte(`{"hello": "from go", "n": 2}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"task": "go.task", "num": 42, "ratio": 1.25, "flag": false, "none": nil,
			"list": []any{1, "x"}, "nested": map[string]any{"k": map[string]any{"deep": true}}},
		Properties: transport.Properties{CorrelationID: "go-c", ReplyTo: "go-reply", MessageID: "go-m",
			Type: "go-type", AppID: "go-app", UserID: "guest", Timestamp: time.Unix(1700000000, 0),
			Expiration: "60000", Priority: 7, DeliveryMode: 2},
	}
	mustPublish(t, ch, m, "", q)
	z := &transport.Message{
		Body: zlibBytes(t, []byte(`{"z": "zipped"}`)), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"compression": "application/x-gzip"},
	}
	mustPublish(t, ch, z, "", q)
	out := runPython(t, "kombu_consume.py", brokerURL(t), q, "2")
	var got []struct {
		Payload         map[string]any `json:"payload"`
		ContentType     string         `json:"content_type"`
		ContentEncoding string         `json:"content_encoding"`
		Headers         map[string]any `json:"headers"`
		Properties      map[string]any `json:"properties"`
		DeliveryInfo    map[string]any `json:"delivery_info"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(got) != 2 {
		t.Fatalf("python consumed %d messages", len(got))
	}
	a := got[0]
	if !reflect.DeepEqual(a.Payload, map[string]any{"hello": "from go", "n": 2.0}) ||
		a.ContentType != "application/json" || a.ContentEncoding != "utf-8" {
		t.Errorf("payload: %+v", a)
	}
	wantHeaders := map[string]any{"task": "go.task", "num": 42.0, "ratio": 1.25, "flag": false, "none": nil,
		"list": []any{1.0, "x"}, "nested": map[string]any{"k": map[string]any{"deep": true}}}
	if !reflect.DeepEqual(a.Headers, wantHeaders) {
		t.Errorf("headers seen by Python:\n got %#v\nwant %#v", a.Headers, wantHeaders)
	}
	wantProps := map[string]any{"priority": 7.0, "correlation_id": "go-c", "reply_to": "go-reply",
		"message_id": "go-m", "type": "go-type", "app_id": "go-app", "user_id": "guest",
		"expiration": "60000", "delivery_mode": 2.0, "timestamp": 1700000000.0}
	if !reflect.DeepEqual(a.Properties, wantProps) {
		t.Errorf("properties seen by Python:\n got %#v\nwant %#v", a.Properties, wantProps)
	}
	if a.DeliveryInfo["routing_key"] != q || a.DeliveryInfo["exchange"] != "" || a.DeliveryInfo["redelivered"] != false {
		t.Errorf("delivery info: %#v", a.DeliveryInfo)
	}
	b := got[1]
	if !reflect.DeepEqual(b.Payload, map[string]any{"z": "zipped"}) || b.Headers["compression"] != "application/x-gzip" {
		t.Errorf("compressed message as Python decoded it: %+v", b)
	}
	waitDepth(t, ch, q, 0) // Python acknowledged both
}
