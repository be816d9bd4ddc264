package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// amqpTest is a test's handle on the test RabbitMQ: the URL, unique names,
// and a connection of its own to check queues and delete what the test
// made.
type amqpTest struct {
	url       string
	conn      *messaging.Connection
	queues    []string
	exchanges []string
}

func newAMQPTest(t *testing.T) *amqpTest {
	t.Helper()
	at := &amqpTest{url: testBroker(t, "RabbitMQ", "KOMBU_TEST_AMQP_URL")}
	conn, err := messaging.NewConnection(at.url, messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at.conn = conn
	t.Cleanup(func() {
		ctx := context.Background()
		if ch, err := conn.Channel(ctx); err == nil {
			for _, q := range at.queues {
				ch.DeleteQueue(ctx, q, false, false)
			}
			for _, x := range at.exchanges {
				ch.DeleteExchange(ctx, x, false)
			}
			ch.Close()
		}
		conn.Close()
	})
	return at
}

// queue returns a unique queue name, deleted when the test ends.
func (at *amqpTest) queue(prefix string) string {
	q := uniqueName("kombu-cli-" + prefix)
	at.queues = append(at.queues, q)
	return q
}

// exchange returns a unique exchange name, deleted when the test ends.
func (at *amqpTest) exchange(prefix string) string {
	x := uniqueName("kombu-cli-" + prefix)
	at.exchanges = append(at.exchanges, x)
	return x
}

// inspect passively declares q: ok is false when it does not exist.
func (at *amqpTest) inspect(t *testing.T, q string) (info transport.QueueInfo, ok bool) {
	t.Helper()
	ctx := context.Background()
	ch, err := at.conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	info, err = ch.DeclareQueue(ctx, transport.Queue{Name: q, Passive: true})
	if errors.Is(err, transport.ErrNotFound) {
		return info, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return info, true
}

// settled returns q's ready messages once no consumer is left on it:
// RabbitMQ requeues a closed channel's unacked messages in the same step
// that removes its consumer, so the count is then final.
func (at *amqpTest) settled(t *testing.T, q string) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		info, ok := at.inspect(t, q)
		if !ok {
			t.Fatalf("queue %s is gone", q)
		}
		if info.Consumers == 0 {
			return info.Messages
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still has %d consumer(s) a minute after the CLI exited", q, info.Consumers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAMQPConsumeCountExact: as on Redis, consume --count N takes exactly
// N messages, whatever the prefetch and the settle mode.
func TestAMQPConsumeCountExact(t *testing.T) {
	at := newAMQPTest(t)
	q := at.queue("count")
	mustRun(t, nil, "publish", `{"n": 1}`, "--url", at.url, "--declare-queue", q, "--routing-key", q, "--count", "200", "--serializer", "json")
	want := 200
	steps := []struct {
		args    []string
		printed int
		taken   int
	}{
		{[]string{"--count", "1"}, 1, 1},
		{[]string{"--count", "50", "--prefetch", "100"}, 50, 50},
		{[]string{"--count", "5", "--requeue"}, 5, 0},
		{[]string{"--count", "3", "--no-ack"}, 3, 3},
		{[]string{"--count", "4", "--reject"}, 4, 4},
	}
	for _, s := range steps {
		args := append([]string{"consume", "--url", at.url, "--queue", q, "--json", "--timeout", "30s"}, s.args...)
		lines := jsonLines[consumedJSON](t, mustRun(t, nil, args...).stdout)
		want -= s.taken
		if len(lines) != s.printed {
			t.Errorf("consume %v printed %d messages, want %d", s.args, len(lines), s.printed)
		}
		if got := at.settled(t, q); got != want {
			t.Errorf("after consume %v the queue holds %d, want exactly %d", s.args, got, want)
		}
	}
}

// TestAMQPPassiveDeclare: consume creates nothing unless --declare; a
// missing queue is a clear error and exit 1.
func TestAMQPPassiveDeclare(t *testing.T) {
	at := newAMQPTest(t)
	q := at.queue("typo")
	r := kombu(t, nil, "consume", "--url", at.url, "--queue", q, "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, `queue "`+q+`" does not exist`) || r.stdout != "" {
		t.Errorf("consume of a missing queue:\n%s", r)
	}
	if _, ok := at.inspect(t, q); ok {
		t.Fatalf("consume without --declare created queue %s", q)
	}
	mustRun(t, nil, "consume", "--url", at.url, "--queue", q, "--declare", "--timeout", "100ms")
	if _, ok := at.inspect(t, q); !ok {
		t.Fatalf("consume --declare did not create queue %s", q)
	}
}

// TestAMQPMandatory: an unroutable mandatory message is an error (exit 1)
// with the count in the JSON; a routable one with --confirm succeeds.
func TestAMQPMandatory(t *testing.T) {
	at := newAMQPTest(t)
	x, q := at.exchange("ex"), at.queue("bound")
	r := kombu(t, nil, "publish", "--url", at.url, "--exchange", x, "--routing-key", "nowhere", "--mandatory", "hello")
	if r.code != 1 || !strings.Contains(r.stderr, "1 of 1 message(s) returned by the broker: 312 NO_ROUTE") {
		t.Errorf("unroutable --mandatory:\n%s", r)
	}
	r = kombu(t, nil, "publish", "--url", at.url, "--exchange", x, "--routing-key", "nowhere", "--mandatory", "--confirm", "--count", "5", "--json", "hello")
	if p := decodeJSON[publishedJSON](t, r.stdout); r.code != 1 || p.Returned != 5 || !p.Confirmed || p.Published != 5 {
		t.Errorf("unroutable --mandatory --confirm --count 5:\n%s", r)
	}
	r = mustRun(t, nil, "publish", "--url", at.url, "--exchange", x, "--routing-key", "k", "--declare-queue", q,
		"--mandatory", "--confirm", "--count", "3", "--json", "hello")
	if p := decodeJSON[publishedJSON](t, r.stdout); p.Returned != 0 || !p.Confirmed {
		t.Errorf("routable --mandatory --confirm: %+v", p)
	}
	if info, _ := at.inspect(t, q); info.Messages != 3 {
		t.Errorf("bound queue holds %d, want 3", info.Messages)
	}
}

// TestAMQPPublishProperties: the new publish flags reach the message.
func TestAMQPPublishProperties(t *testing.T) {
	at := newAMQPTest(t)
	q := at.queue("props")
	mustRun(t, nil, "publish", "--url", at.url, "--declare-queue", q, "--routing-key", q, "--queue-arg", "x-max-priority=10",
		"--priority", "7", "--expiration", "60", "--correlation-id", "c-1", "--reply-to", "replies", "--header", "h=v", "body")
	m := decodeJSON[consumedJSON](t, mustRun(t, nil, "consume", "--url", at.url, "--queue", q, "--count", "1", "--json").stdout)
	p := m.Properties
	if m.Priority != 7 || p["correlation_id"] != "c-1" || p["reply_to"] != "replies" || p["expiration"] != "60000" || m.Headers["h"] != "v" {
		t.Errorf("consumed %+v", m)
	}
}

// TestAMQPQueuesWithoutRedisHint: named queues and listing speak of
// RabbitMQ, never of Redis; without the management API, listing says
// what to do.
func TestAMQPQueuesWithoutRedisHint(t *testing.T) {
	at := newAMQPTest(t)
	q := at.queue("missing")
	r := mustRun(t, nil, "queues", q, "--url", at.url)
	if !strings.Contains(r.stderr, "1 queue(s) not found") || strings.Contains(r.stdout+r.stderr, "Redis") {
		t.Errorf("queues of a missing queue:\n%s", r)
	}
	r = kombu(t, nil, "queues", "--url", at.url, "--management-url", "http://127.0.0.1:1")
	if r.code != 1 || !strings.Contains(r.stderr, "management API at http://127.0.0.1:1 did not answer") ||
		!strings.Contains(r.stderr, "rabbitmq-plugins enable rabbitmq_management") || strings.Contains(r.stderr, "Redis") {
		t.Errorf("queues without the management API:\n%s", r)
	}
}

// TestAMQPQueuesManagement lists the queues through the management API,
// when the test command found it (KOMBU_TEST_AMQP_MANAGEMENT_URL).
func TestAMQPQueuesManagement(t *testing.T) {
	at := newAMQPTest(t)
	mgmt := os.Getenv("KOMBU_TEST_AMQP_MANAGEMENT_URL")
	if mgmt == "" {
		t.Skip("no RabbitMQ management API: KOMBU_TEST_AMQP_MANAGEMENT_URL is unset (./scripts/test.sh enables rabbitmq_management on a local broker)")
	}
	q := at.queue("listed")
	mustRun(t, nil, "publish", "--url", at.url, "--declare-queue", q, "--routing-key", q, "--count", "3", "x")
	// The management API refreshes queue figures every few seconds: wait
	// for this queue's to show.
	deadline := time.Now().Add(time.Minute)
	var got queueJSON
	for got.Messages != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("queue %s never showed 3 messages in the management API: %+v", q, got)
		}
		time.Sleep(200 * time.Millisecond)
		out := decodeJSON[queuesJSON](t, mustRun(t, nil, "queues", "--url", at.url, "--management-url", mgmt, "--json").stdout)
		if out.Transport != "amqp" || !strings.HasPrefix(out.Source, "management ") {
			t.Fatalf("queues --json: %+v", out)
		}
		for _, x := range out.Queues {
			if x.Name == q {
				got = x
			}
		}
	}
	if got.Unacked == nil || *got.Unacked != 0 || got.Consumers == nil || *got.Consumers != 0 || got.PublishPerS == nil {
		t.Errorf("listed %+v", got)
	}
	r := mustRun(t, nil, "queues", "--url", at.url, "--management-url", mgmt)
	if !strings.Contains(r.stdout, "publish/s") || !strings.Contains(r.stdout, q) {
		t.Errorf("queues:\n%s", r)
	}
	frames := jsonLines[topFrame](t, mustRun(t, nil, "top", q, "--url", at.url, "--management-url", mgmt, "--json", "--iterations", "2", "--interval", "100ms").stdout)
	if len(frames) != 2 || frames[1].TrendOf != "consume_per_s" || len(frames[1].Queues) != 1 || frames[1].Queues[0].ConsumePerS == nil {
		t.Errorf("top --json through the management API: %+v", frames)
	}
}
