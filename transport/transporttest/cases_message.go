package transporttest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func testProperties(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", map[string]any{"x-max-priority": int64(10)})
	m := &transport.Message{
		Body:            []byte(`{"hello": "world"}`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Headers: map[string]any{
			"task":   "proj.add",
			"n":      int64(42),
			"f":      1.5,
			"ok":     true,
			"none":   nil,
			"list":   []any{"a", int64(1), []any{"nested"}},
			"nested": map[string]any{"k": "v", "deep": map[string]any{"x": int64(7)}},
		},
		Properties: transport.Properties{
			CorrelationID: "corr-1",
			ReplyTo:       "reply.queue",
			MessageID:     "msg-1",
			Type:          "task",
			AppID:         "kombu-go",
			DeliveryMode:  2,
			Expiration:    "60000",
			Priority:      3,
		},
	}
	if e.f.Timestamp {
		m.Properties.Timestamp = time.Unix(1700000000, 0)
	}
	e.publish(ch, "", q, m)
	got := e.get(ch, q, true)
	if string(got.Body) != string(m.Body) || got.ContentType != m.ContentType || got.ContentEncoding != m.ContentEncoding {
		e.t.Errorf("body/content: got %q %q %q", got.Body, got.ContentType, got.ContentEncoding)
	}
	p, w := got.Properties, m.Properties
	check := func(name, got, want string) {
		if got != want {
			e.t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	check("CorrelationID", p.CorrelationID, w.CorrelationID)
	check("ReplyTo", p.ReplyTo, w.ReplyTo)
	check("MessageID", p.MessageID, w.MessageID)
	check("Type", p.Type, w.Type)
	check("AppID", p.AppID, w.AppID)
	check("Expiration", p.Expiration, w.Expiration)
	if p.DeliveryMode != 2 && p.DeliveryMode != 0 {
		e.t.Errorf("DeliveryMode = %d, want 2 (persistent)", p.DeliveryMode)
	}
	if p.Priority != 3 {
		e.t.Errorf("Priority = %d, want 3", p.Priority)
	}
	if e.f.Timestamp && !p.Timestamp.Equal(w.Timestamp) {
		e.t.Errorf("Timestamp = %v, want %v", p.Timestamp, w.Timestamp)
	}
	if err := sameValue(got.Headers, m.Headers); err != nil {
		e.t.Errorf("headers: %v\n got  %#v\n want %#v", err, got.Headers, m.Headers)
	}
	// The delivered message is the consumer's: changing it must not change
	// what the publisher still holds, and vice versa.
	m.Headers["task"] = "changed"
	if got.Headers["task"] != "proj.add" {
		e.t.Error("the delivered headers alias the publisher's")
	}
}

// sameValue compares JSON-like values; numbers compare by value, since a
// transport may give back float64 for an int64 it sent as JSON.
func sameValue(got, want any) error {
	if gf, ok := num(got); ok {
		if wf, ok := num(want); ok && gf == wf {
			return nil
		}
		return fmt.Errorf("%v (%T) != %v (%T)", got, got, want, want)
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%#v != %#v", got, want)
		}
		for k, v := range w {
			if _, ok := g[k]; !ok {
				return fmt.Errorf("key %q missing", k)
			}
			if err := sameValue(g[k], v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%#v != %#v", got, want)
		}
		for i := range w {
			if err := sameValue(g[i], w[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	}
	if got != want {
		return fmt.Errorf("%#v (%T) != %#v (%T)", got, got, want, want)
	}
	return nil
}

func num(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func testBinaryBody(e *env) {
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	body := make([]byte, 0, 512)
	for i := range 256 {
		body = append(body, byte(i))
	}
	body = append(body, []byte("\x00\xff\xfe invalid utf-8 \xc3\x28 end")...)
	m := &transport.Message{Body: body, ContentType: "application/octet-stream", ContentEncoding: "binary"}
	e.publish(ch, "", q, m)
	got := e.get(ch, q, true)
	if !bytes.Equal(got.Body, body) {
		e.t.Fatalf("body changed:\n got  %x\n want %x", got.Body, body)
	}
}

func testMany(e *env) {
	const n = 1000
	ch := e.channel()
	q := e.queue(ch, "q", nil)
	if err := ch.Qos(e.ctx, 50); err != nil {
		e.t.Fatal(err)
	}
	r := e.consume(ch, q, false)
	pub := e.channel()
	for i := range n {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		e.publish(pub, "", q, &transport.Message{Body: b[:], ContentType: "application/octet-stream"})
	}
	seen := make([]bool, n)
	for range n {
		m := r.next()
		if len(m.Body) != 8 {
			e.t.Fatalf("body %x", m.Body)
		}
		i := binary.BigEndian.Uint64(m.Body)
		if i >= n || seen[i] {
			e.t.Fatalf("message %d delivered twice or unknown", i)
		}
		seen[i] = true
		if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
			e.t.Fatal(err)
		}
	}
	r.none()
	e.empty(ch, q)
}

func testReturn(e *env) {
	ch := e.channel()
	rt, ok := ch.(transport.Returner)
	if !ok {
		e.t.Fatalf("%T does not implement transport.Returner", ch)
	}
	got := make(chan *transport.Returned, 1)
	rt.OnReturn(func(r *transport.Returned) { got <- r })
	x := e.exchange(ch, "x", transport.Direct)
	m := text("nobody wants me")
	if err := ch.Publish(e.ctx, m, x, "no.route", transport.PublishOptions{Mandatory: true}); err != nil {
		e.t.Fatalf("Publish: %v", err)
	}
	select {
	case r := <-got:
		if r.ReplyCode != 312 || r.Exchange != x || r.RoutingKey != "no.route" || string(r.Message.Body) != string(m.Body) {
			e.t.Errorf("returned %+v", r)
		}
	case <-time.After(e.f.Timeout):
		e.t.Fatalf("no return within %v", e.f.Timeout)
	}
	// Not mandatory: dropped silently.
	if err := ch.Publish(e.ctx, text("dropped"), x, "no.route", transport.PublishOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.barrier()
	select {
	case r := <-got:
		e.t.Errorf("non-mandatory message returned: %+v", r)
	default:
	}
}
