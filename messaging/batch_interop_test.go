package messaging_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// kombuReader reads n messages from a queue with Python Kombu and prints
// each as a JSON line: payload (decoded, decompressed), headers,
// properties and delivery_info.
const kombuReader = `
import json, sys
from kombu import Connection, Exchange, Queue
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Connection(url) as conn:
    got = []
    def on(body, message):
        got.append({'payload': body, 'headers': message.headers,
                    'properties': message.properties, 'delivery_info': message.delivery_info,
                    'content_type': message.content_type})
        message.ack()
    with conn.Consumer(Queue(name, Exchange(''), name), callbacks=[on], accept=['json', 'text/plain']):
        while len(got) < n:
            conn.drain_events(timeout=20)
    for g in got:
        print(json.dumps(g, default=str))
`

// Messages published with Producer.PublishBatch on Redis are read by
// Python Kombu as they were sent: bodies (with non-ASCII text, and one
// compressed), headers and properties.
func TestPublishBatchKombuReads(t *testing.T) {
	url := brokerURL(t, "KOMBU_TEST_REDIS_URL")
	py := pythonWith(t, "kombu")
	conn, err := messaging.NewConnection(url, brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := messaging.Queue{Name: "batch-kombu-" + messaging.NewUUID()[:8]}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Delete(context.Background(), ch, messaging.DeleteOptions{})
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{RoutingKey: q.Name})
	if err != nil {
		t.Fatal(err)
	}
	bodies := []any{
		map[string]any{"i": 1, "payload": "plain ascii text, long enough for the word-at-a-time path"},
		map[string]any{"é": "naïve café ☕ \"quoted\" back\\slash\ttab \u2028", "list": []any{1.5, true, nil}},
		"a string body",
		map[string]any{"zipped": "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"},
	}
	msgs := make([]messaging.BatchMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = messaging.BatchMessage{Body: b, Options: messaging.PublishOptions{
			Headers:       map[string]any{"n": i, "ключ": "значение", "q": "say \"hi\" \\ \n"},
			CorrelationID: "corr-" + string(rune('a'+i)), Priority: i}}
	}
	msgs[3].Options.Compression = "zlib"
	// And one without headers: Kombu reads an empty map.
	msgs = append(msgs, messaging.BatchMessage{Body: "no headers"})
	if err := p.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, py, "-c", kombuReader, url, q.Name, "5").Output()
	if err != nil {
		t.Fatalf("kombu reader: %v\n%s", err, stderrOf(err))
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("kombu printed %q: %v", line, err)
		}
		got = append(got, m)
	}
	if len(got) != len(msgs) {
		t.Fatalf("kombu read %d messages, want %d:\n%s", len(got), len(msgs), out)
	}
	// Go's JSON round trip of what was sent, to compare with Python's.
	norm := func(v any) any {
		b, _ := json.Marshal(v)
		var x any
		_ = json.Unmarshal(b, &x)
		return x
	}
	for _, g := range got {
		h, _ := g["headers"].(map[string]any)
		if g["payload"] == "no headers" {
			if h == nil || len(h) != 0 {
				t.Errorf("message without headers: headers %#v, want {}", g["headers"])
			}
			continue
		}
		n, ok := h["n"].(float64)
		if !ok || int(n) < 0 || int(n) >= len(bodies) {
			t.Fatalf("headers %v", g["headers"])
		}
		i := int(n)
		if !reflect.DeepEqual(g["payload"], norm(bodies[i])) {
			t.Errorf("message %d: payload %#v, want %#v", i, g["payload"], norm(bodies[i]))
		}
		if h["ключ"] != "значение" || h["q"] != "say \"hi\" \\ \n" {
			t.Errorf("message %d: headers %v", i, h)
		}
		props, _ := g["properties"].(map[string]any)
		if props["correlation_id"] != "corr-"+string(rune('a'+i)) || props["priority"] != float64(i) {
			t.Errorf("message %d: properties %v", i, props)
		}
		if di, _ := g["delivery_info"].(map[string]any); di["routing_key"] != q.Name {
			t.Errorf("message %d: delivery_info %v", i, di)
		}
	}
}
