package sqs

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestFIFOQueue: a queue named "*.fifo" is created as a FIFO queue under
// its mangled name ("jobs.v1.fifo" -> "<prefix>jobs-v1.fifo") and its
// messages, sent with MessageGroupId and MessageDeduplicationId, all
// arrive. Their order is not checked: goaws (v0.4.5) hides a message of a
// locked group that a receive walks over without returning it (it sets
// the receipt handle before it checks the group lock), so the message
// comes back only after the visibility timeout (1 s here), behind later
// ones. SQS orders a group itself.
func TestFIFOQueue(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 1})
	const q = "jobs.v1.fifo"
	ch := e.channel(nil, q)
	u, err := e.conn.cl.url(e.ctx, q, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.prefix + "jobs-v1.fifo"; !strings.HasSuffix(u, "/"+EntityName(e.prefix)+"jobs-v1.fifo") {
		t.Fatalf("queue URL %q, want a name of %q", u, want)
	}
	for i := range 5 {
		m := &transport.Message{Body: []byte(fmt.Sprint(i)),
			Properties: transport.Properties{Extra: map[string]any{"MessageGroupId": "g1"}}}
		if err := ch.Publish(e.ctx, m, "", q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	col := newCollector()
	if _, err := ch.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		col.fn(m)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}
	got := col.wait(t, 5, 20*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		seen[string(m.Body)] = true
		if m.Properties.Extra["MessageGroupId"] != "g1" {
			t.Fatalf("message %q: %v", m.Body, m.Properties.Extra)
		}
	}
	if len(seen) != 5 {
		t.Fatalf("distinct messages %v", seen)
	}
}
