package celery_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
)

// ApplyAsync writes Celery's protocol 2: the headers, the properties and
// the [args, kwargs, embed] body, to the default exchange with the queue's
// name as routing key.
func TestApplyAsyncWireFormat(t *testing.T) {
	url := "memory://celery-" + messaging.NewUUID()[:8]
	client, err := celery.NewClient(celery.ClientOptions{Broker: url})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eta := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	r, err := client.ApplyAsync(ctx, "proj.tasks.mul", celery.CallOptions{
		Args: []any{6, 7}, Kwargs: map[string]any{"k": "v"}, TaskID: "id-1", ETA: eta,
		ExpiresIn: time.Hour, Retries: 2, Priority: 5, ParentID: "parent-1", RootID: "root-1", GroupID: "g-1",
		TimeLimit: 30 * time.Second, SoftTimeLimit: 20 * time.Second, Headers: map[string]any{"x-extra": "1"},
		Queue: "wire",
	})
	if err != nil || r.ID != "id-1" {
		t.Fatalf("ApplyAsync: %v, %v", r, err)
	}
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := messaging.Queue{Name: "wire"}.Get(ctx, ch, messaging.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Ack()
	h := m.Headers
	if n, ok := celery.Number(h["retries"]); !ok || n != 2 {
		t.Errorf("header retries = %#v, want 2", h["retries"])
	}
	for k, want := range map[string]any{"task": "proj.tasks.mul", "id": "id-1",
		"parent_id": "parent-1", "root_id": "root-1", "group": "g-1", "lang": "go", "x-extra": "1",
		"eta": "2030-01-02T03:04:05.000006+00:00", "argsrepr": "(6, 7)", "kwargsrepr": "{'k': 'v'}",
		"ignore_result": false, "shadow": nil} {
		if got := h[k]; got != want {
			t.Errorf("header %s = %#v, want %#v", k, got, want)
		}
	}
	if tl, _ := json.Marshal(h["timelimit"]); string(tl) != "[30,20]" {
		t.Errorf("timelimit %s", tl)
	}
	if exp, _ := h["expires"].(string); !strings.HasSuffix(exp, "+00:00") {
		t.Errorf("expires %q", exp)
	}
	if o, _ := h["origin"].(string); !strings.HasPrefix(o, "gen") || !strings.Contains(o, "@") {
		t.Errorf("origin %q, want gen<pid>@<host>", o)
	}
	if m.Properties.CorrelationID != "id-1" || m.Properties.Priority != 5 || m.Properties.Expiration == "" ||
		m.ContentType != "application/json" || m.DeliveryInfo.Exchange != "" || m.DeliveryInfo.RoutingKey != "wire" {
		t.Errorf("properties %+v, content type %s, delivery %+v", m.Properties, m.ContentType, m.DeliveryInfo)
	}
	body, err := m.Decode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `[[6,7],{"k":"v"},{"callbacks":null,"chain":null,"chord":null,"errbacks":null}]`
	if b, _ := json.Marshal(body); string(b) != want {
		t.Errorf("body %s, want %s", b, want)
	}
}
