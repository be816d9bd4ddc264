package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/amqp"
)

// amqpConn connects to KOMBU_TEST_AMQP_URL (skipping without it) and
// returns the connection and a name unique to this test run.
func amqpConn(t *testing.T) (*messaging.Connection, string) {
	t.Helper()
	conn, err := messaging.NewConnection(brokerURL(t, "KOMBU_TEST_AMQP_URL"), brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, "kombu-go-qt-" + messaging.NewUUID()[:8]
}

// deleteAfter deletes the queues when the test ends.
func deleteAfter(t *testing.T, conn *messaging.Connection, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ch, err := conn.DefaultChannel(ctx)
		if err != nil {
			return
		}
		for _, n := range names {
			_, _ = ch.DeleteQueue(ctx, n, false, false)
		}
	})
}

// collect consumes from q until n messages arrived (acking each) and
// returns their bodies in order.
func collect(ctx context.Context, t *testing.T, conn *messaging.Connection, q messaging.Queue, n int) []any {
	t.Helper()
	var got []any
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues: []messaging.Queue{q}, PrefetchCount: 10,
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			got = append(got, body)
			_ = m.Ack()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	for len(got) < n {
		if err := conn.DrainEvents(ctx); err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), n, err)
		}
	}
	return got
}

func TestIntegrationQuorumQueue(t *testing.T) {
	conn, name := amqpConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ex := messaging.NewExchange(name, messaging.Direct)
	q := messaging.QuorumQueue(name, ex, "rk")
	deleteAfter(t, conn, name)
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: ex, RoutingKey: "rk"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := p.Publish(ctx, map[string]any{"i": i}, messaging.PublishOptions{
			Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(ctx, t, conn, q, 3)
	if want := "[map[i:0] map[i:1] map[i:2]]"; fmt.Sprint(got) != want {
		t.Errorf("consumed %v, want %v", got, want)
	}
	// The broker holds a quorum queue: declaring it classic is refused.
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	classic := messaging.NewQueue(name, ex, "rk")
	if _, err := classic.DeclareQueue(ctx, ch, false); !errors.Is(err, transport.ErrNotEquivalent) {
		t.Errorf("redeclaring the quorum queue as classic: %v, want ErrNotEquivalent", err)
	}
}

func TestIntegrationQuorumDeliveryLimit(t *testing.T) {
	conn, name := amqpConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const limit = 2
	dlq := messaging.NewQueue(name+".dlq", messaging.Exchange{}, "")
	q := messaging.QuorumQueue(name, messaging.Exchange{}, "")
	q.DeliveryLimit = limit
	q.DeadLetterRoutingKey = dlq.Name
	deleteAfter(t, conn, name, dlq.Name)
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, "poison", messaging.PublishOptions{RoutingKey: name,
		Declare: []messaging.Declaration{dlq, q}}); err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues: []messaging.Queue{q}, PrefetchCount: 1,
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			deliveries++
			_ = m.Requeue()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var dead *messaging.Message
	for dead == nil {
		short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		err := conn.DrainEvents(short)
		stop()
		if err != nil && !errors.Is(err, messaging.ErrTimeout) {
			t.Fatal(err)
		}
		m, err := dlq.Get(ctx, ch, messaging.GetOptions{})
		switch {
		case errors.Is(err, transport.ErrEmpty):
			if ctx.Err() != nil {
				t.Fatalf("nothing dead-lettered after %d deliveries", deliveries)
			}
		case err != nil:
			t.Fatal(err)
		default:
			dead = m
		}
	}
	_ = dead.Ack()
	// RabbitMQ dead-letters a message returned more than limit times: it
	// was delivered limit+1 times.
	if deliveries != limit+1 {
		t.Errorf("%d deliveries before dead-lettering, want %d (x-delivery-limit %d)", deliveries, limit+1, limit)
	}
	if body, _ := dead.Decode(); body != "poison" {
		t.Errorf("dead-lettered body %v", body)
	}
	if deaths, ok := dead.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		if d, ok := deaths[0].(map[string]any); ok && d["reason"] != "delivery_limit" {
			t.Errorf("x-death reason %v, want delivery_limit", d["reason"])
		}
	} else {
		t.Errorf("dead-lettered message without x-death: headers %v", dead.Headers)
	}
}

func TestIntegrationStreamOffsets(t *testing.T) {
	conn, name := amqpConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := messaging.StreamQueue(name, messaging.Exchange{}, "", messaging.StreamFirst)
	deleteAfter(t, conn, name)
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	var want []any
	for i := range n {
		body := fmt.Sprintf("m%d", i)
		want = append(want, body)
		if err := p.Publish(ctx, body, messaging.PublishOptions{RoutingKey: name,
			Declare: []messaging.Declaration{s}}); err != nil {
			t.Fatal(err)
		}
	}
	first := collect(ctx, t, conn, s, n)
	again := collect(ctx, t, conn, s, n)
	if !reflect.DeepEqual(first, want) || !reflect.DeepEqual(again, want) {
		t.Errorf("from offset first: %v, then %v; want %v both times", first, again, want)
	}
	// A numeric offset starts there (offsets count from 0).
	from3 := s
	from3.StreamOffset = int64(3)
	if got := collect(ctx, t, conn, from3, 2); !reflect.DeepEqual(got, want[3:]) {
		t.Errorf("from offset 3: %v, want %v", got, want[3:])
	}
}

// TestIntegrationQuorumConfirmDefault shows that a publish to a quorum
// queue waits for the broker's confirm without confirm_publish: a full
// quorum queue with x-overflow reject-publish nacks a message, which
// Publish reports, while the same publish with ConfirmNever returns nil
// and the message is silently dropped.
func TestIntegrationQuorumConfirmDefault(t *testing.T) {
	conn, name := amqpConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := messaging.QuorumQueue(name, messaging.Exchange{}, "")
	q.MaxLength = 1
	q.QueueArguments = map[string]any{"x-overflow": "reject-publish"}
	deleteAfter(t, conn, name)
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := messaging.PublishOptions{RoutingKey: name, Declare: []messaging.Declaration{q}}
	// A quorum queue refuses publishes once it is over its limit: it takes
	// one message beyond x-max-length first (measured on RabbitMQ 3.10).
	accepted, nacked := 0, false
	for range 5 {
		err := p.Publish(ctx, "m", opts)
		if errors.Is(err, amqp.ErrNacked) {
			nacked = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	if !nacked {
		t.Fatalf("%d publishes to a quorum queue of x-max-length 1 all returned nil: the confirm (a nack) was not awaited", accepted)
	}
	opts.Confirm = messaging.ConfirmNever
	if err := p.Publish(ctx, "dropped", opts); err != nil {
		t.Fatalf("publish with ConfirmNever: %v, want nil (nothing awaited)", err)
	}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := q.DeclareQueue(ctx, ch, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != accepted {
		t.Errorf("the queue holds %d messages, want the %d accepted ones", info.Messages, accepted)
	}
	// The channel is in confirm mode now; a classic queue's publish does
	// not wait, and still works.
	plain := messaging.NewQueue(name+".plain", messaging.Exchange{}, "")
	plain.AutoDelete = true
	if err := p.Publish(ctx, "x", messaging.PublishOptions{RoutingKey: plain.Name,
		Declare: []messaging.Declaration{plain}}); err != nil {
		t.Fatal(err)
	}
	deleteAfter(t, conn, plain.Name)
}

// kombuQuorumScript declares a quorum queue the Kombu way
// (queue_arguments) and publishes one message to it.
const kombuQuorumScript = `
import sys, kombu
url, name = sys.argv[1], sys.argv[2]
ex = kombu.Exchange(name, 'direct')
q = kombu.Queue(name, ex, 'rk', queue_arguments={
    'x-queue-type': 'quorum', 'x-delivery-limit': 3, 'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': name + '.dlq'})
with kombu.Connection(url, transport_options={'confirm_publish': True}) as c:
    c.Producer().publish({'from': 'kombu'}, exchange=ex, routing_key='rk', declare=[q])
print('ok')
`

// TestInteropKombuQuorumQueue: a quorum queue Python Kombu declared
// through queue_arguments is the queue messaging.QuorumQueue with the
// typed fields declares (RabbitMQ finds them equivalent, or the
// declaration would fail with 406), and Go consumes what Kombu published.
func TestInteropKombuQuorumQueue(t *testing.T) {
	py := celeryPython(t)
	conn, name := amqpConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	deleteAfter(t, conn, name)
	url := brokerURL(t, "KOMBU_TEST_AMQP_URL")
	if out, err := exec.CommandContext(ctx, py, "-c", kombuQuorumScript, url, name).CombinedOutput(); err != nil ||
		strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python: %v\n%s", err, out)
	}
	q := messaging.QuorumQueue(name, messaging.NewExchange(name, messaging.Direct), "rk")
	q.DeliveryLimit = 3
	q.DeadLetterRoutingKey = name + ".dlq"
	got := collect(ctx, t, conn, q, 1) // declares q first
	if fmt.Sprint(got) != "[map[from:kombu]]" {
		t.Errorf("consumed %v", got)
	}
}
