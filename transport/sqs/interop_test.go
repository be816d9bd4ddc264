package sqs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kombu-go/kombu/transport"
)

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// peer runs testdata/kombu_sqs_peer.py with this env's URL and options and
// returns its standard output.
func (e *env) peer(args ...string) string {
	e.t.Helper()
	full := append([]string{"testdata/kombu_sqs_peer.py", args[0], e.url, mustJSON(e.opts)}, args[1:]...)
	return e.python(full...)
}

// peerScript runs a Python script with this env's URL and options first.
func (e *env) peerScript(script string, args ...string) string {
	e.t.Helper()
	return e.python(append([]string{script, e.url, mustJSON(e.opts)}, args...)...)
}

func (e *env) python(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(python(e.t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("python %s: %v\n%s", args[:2], err, stderr.String())
	}
	return string(out)
}

// pyMsg is one message as the Python consumer printed it.
type pyMsg struct {
	Payload     any            `json:"payload"`
	Headers     map[string]any `json:"headers"`
	ContentType string         `json:"content_type"`
	RoutingKey  string         `json:"routing_key"`
	Redelivered bool           `json:"redelivered"`
	Properties  map[string]any `json:"properties"`
}

func parsePy(t *testing.T, out string) []pyMsg {
	t.Helper()
	var msgs []pyMsg
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m pyMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("python printed %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// TestInteropPythonToGo: messages published by Python Kombu are consumed
// by Go with their body, headers and properties, and Go's
// acknowledgements delete them.
func TestInteropPythonToGo(t *testing.T) {
	e := newEnv(t, nil)
	const q, n = "interop.py2go", 20
	ch := e.channel(nil, q)
	var msgs []map[string]any
	for i := range n {
		msgs = append(msgs, map[string]any{
			"body":       map[string]any{"i": i, "text": "héllo"},
			"headers":    map[string]any{"task": "tasks.add", "id": fmt.Sprint(i)},
			"properties": map[string]any{"correlation_id": fmt.Sprint("c", i), "reply_to": "replies"},
		})
	}
	e.peer("publish", q, mustJSON(msgs))
	if err := ch.Qos(e.ctx, 5); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	if _, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		col.fn(m)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}
	got := col.wait(t, n, 30*time.Second)
	seen := map[float64]bool{}
	for _, m := range got {
		if m.Err != nil {
			t.Fatalf("decode: %v", m.Err)
		}
		var body struct {
			I    float64 `json:"i"`
			Text string  `json:"text"`
		}
		if err := json.Unmarshal(m.Body, &body); err != nil || body.Text != "héllo" {
			t.Fatalf("body %q: %v", m.Body, err)
		}
		seen[body.I] = true
		if m.ContentType != "application/json" || m.Headers["task"] != "tasks.add" ||
			m.Headers["id"] != fmt.Sprint(body.I) || m.Properties.CorrelationID != fmt.Sprint("c", body.I) ||
			m.Properties.ReplyTo != "replies" || m.DeliveryInfo.RoutingKey != q {
			t.Errorf("message %v: %+v", body.I, m)
		}
		if !strings.Contains(m.DeliveryInfo.DeliveryTag, "#") && len(m.DeliveryInfo.DeliveryTag) < 20 {
			t.Errorf("delivery tag %q is not a receipt handle", m.DeliveryInfo.DeliveryTag)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages of %d", len(seen), n)
	}
	waitSize(t, e, ch, q, 0)
}

// waitSize waits until the queue holds want messages, in flight included
// (goaws counts those in ApproximateNumberOfMessages).
func waitSize(t *testing.T, e *env, ch *Channel, q string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := ch.ch.Store().Size(e.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d messages, want %d", q, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInteropGoToPython: messages published by Go are consumed and
// acknowledged by Python Kombu.
func TestInteropGoToPython(t *testing.T) {
	e := newEnv(t, nil)
	const q, n = "interop.go2py", 20
	ch := e.channel(nil, q)
	for i := range n {
		m := &transport.Message{
			Body:            []byte(fmt.Sprintf(`{"i": %d, "text": "h\u00e9llo"}`, i)),
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
			Headers:         map[string]any{"task": "tasks.add", "id": fmt.Sprint(i)},
			Properties:      transport.Properties{CorrelationID: fmt.Sprint("c", i), Priority: 3},
		}
		if err := ch.Publish(e.ctx, m, "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := parsePy(t, e.peer("consume", q, fmt.Sprint(n), "ack", "30"))
	seen := map[float64]bool{}
	for _, m := range msgs {
		p, _ := m.Payload.(map[string]any)
		i, _ := p["i"].(float64)
		seen[i] = true
		if p["text"] != "héllo" || m.Headers["task"] != "tasks.add" || m.ContentType != "application/json" ||
			m.Properties["correlation_id"] != fmt.Sprint("c", i) || m.RoutingKey != q || m.Redelivered {
			t.Errorf("python got %+v", m)
		}
	}
	if len(seen) != n {
		t.Fatalf("python saw %d distinct messages of %d", len(seen), n)
	}
	waitSize(t, e, ch, q, 0)
}

// TestInteropUnacked: a message one side received and did not acknowledge
// goes back to the queue for the other side: Go's Close and Reject with
// requeue, and Python Kombu's close, all make it visible at once
// (ChangeMessageVisibility 0).
func TestInteropUnacked(t *testing.T) {
	e := newEnv(t, nil)
	const q = "interop.unacked"
	ch := e.channel(nil, q)
	for i := range 4 {
		if err := ch.Publish(e.ctx, &transport.Message{Body: []byte(fmt.Sprint(i)), ContentType: "application/json"},
			"", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Go takes all four: rejects one with requeue, leaves three unacked
	// and closes the channel.
	ch.Qos(e.ctx, 4)
	col := newCollector()
	if _, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, col.fn); err != nil {
		t.Fatal(err)
	}
	got := col.wait(t, 4, 20*time.Second)
	if err := ch.Reject(got[0].DeliveryInfo.DeliveryTag, true); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	// Python receives all four at once (no visibility timeout to wait
	// for: the queues have 1800 s), and leaves two unacknowledged.
	py := parsePy(t, e.peer("consume", q, "4", "noack", "20"))
	if len(py) < 4 {
		t.Fatalf("python got %d of 4", len(py))
	}
	// Kombu's close restored them: Go gets all four again.
	ch2 := e.channel(nil)
	col2 := newCollector()
	if _, err := ch2.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		col2.fn(m)
		ch2.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}
	again := col2.wait(t, 4, 20*time.Second)
	bodies := map[string]bool{}
	for _, m := range again {
		bodies[string(m.Body)] = true
	}
	if len(bodies) != 4 {
		t.Fatalf("bodies after Python's close: %v", bodies)
	}
	waitSize(t, e, ch2, q, 0)
}

// TestInteropWireBytes compares bytes: the MessageBody Kombu's own
// functions build (prepare_message, _inplace_augment_message, dumps,
// AsyncMessage.encode) with ours for the same message and delivery tag,
// and a body Python Kombu sent through the emulator, decoded and encoded
// again by us, with what SQS stored.
func TestInteropWireBytes(t *testing.T) {
	e := newEnv(t, nil)
	const q, tag = "interop.wire", "0b4e8f2c-6a1d-4d0e-9a59-6f3c2e1d7b10"
	msg := map[string]any{
		"body":       map[string]any{"args": []any{1, 2}, "kwargs": map[string]any{}, "s": "naïve ☃"},
		"headers":    map[string]any{"task": "tasks.add", "retries": 0},
		"properties": map[string]any{"correlation_id": "abc", "delivery_mode": 2},
	}
	var py struct{ Body, SQS string }
	if err := json.Unmarshal([]byte(e.peer("encode", q, mustJSON(msg), tag)), &py); err != nil {
		t.Fatal(err)
	}
	m := &transport.Message{
		Body: []byte(py.Body), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers:      map[string]any{"task": "tasks.add", "retries": int64(0)},
		Properties:   transport.Properties{CorrelationID: "abc", DeliveryMode: 2},
		DeliveryInfo: transport.DeliveryInfo{RoutingKey: q, DeliveryTag: tag},
	}
	ours, err := encodeBody(m, true)
	if err != nil {
		t.Fatal(err)
	}
	if ours != py.SQS {
		t.Fatalf("MessageBody differs from Kombu's:\n ours  %s\n kombu %s\n(decoded: ours %s\n kombu %s)",
			ours, py.SQS, optionalB64Decode(ours), optionalB64Decode(py.SQS))
	}

	// A body Python Kombu really sent: decode and encode again gives the
	// same bytes.
	e.channel(nil, q)
	e.peer("publish", q, mustJSON([]any{msg}))
	u, err := e.conn.cl.url(e.ctx, q, false)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.conn.cl.def.ReceiveMessage(e.ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(u), WaitTimeSeconds: 2})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	raw := aws.ToString(out.Messages[0].Body)
	got := decodeBody(raw)
	if got.Err != nil {
		t.Fatal(got.Err)
	}
	again, err := encodeBody(got, true)
	if err != nil {
		t.Fatal(err)
	}
	if again != raw {
		t.Fatalf("re-encoded body differs from Kombu's:\n ours  %s\n kombu %s", optionalB64Decode(again), optionalB64Decode(raw))
	}
}
