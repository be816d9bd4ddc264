package messaging_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/amqp"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// brokerURL returns the URL in env, or skips the test with the reason (fails
// it when KOMBU_REQUIRE_BROKERS=1).
func brokerURL(t *testing.T, env string) string {
	t.Helper()
	return transporttest.BrokerURL(t, env)
}

// brokerOptions serve the network schemes with the real transports, whether
// or not they are wired into the built-in table yet (Redis's are: its New
// returns *redis.Transport, which the table adapts).
func brokerOptions() messaging.Options {
	a := messaging.Scheme{New: func(cfg transport.Config) (transport.Transport, error) {
		t, err := amqp.New(cfg)
		if err != nil {
			return nil, err
		}
		return t, nil
	}}
	return messaging.Options{Schemes: map[string]messaging.Scheme{"amqp": a, "amqps": a}}
}

// eachBroker runs fn as a subtest for Redis and for RabbitMQ, with a
// connection to it that is closed when fn returns.
func eachBroker(t *testing.T, fn func(t *testing.T, url string, conn *messaging.Connection)) {
	for _, env := range []string{"KOMBU_TEST_REDIS_URL", "KOMBU_TEST_AMQP_URL"} {
		t.Run(env, func(t *testing.T) {
			url := brokerURL(t, env)
			conn, err := messaging.NewConnection(url, brokerOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fn(t, url, conn)
		})
	}
}

func TestIntegrationBrokers(t *testing.T) {
	eachBroker(t, func(t *testing.T, url string, conn *messaging.Connection) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		name := "messaging-test-" + messaging.NewUUID()[:8]
		media := messaging.NewExchange(name, messaging.Direct)
		video := messaging.NewQueue(name, media, "video")
		sqName := name + "-simple"
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			ch, err := conn.DefaultChannel(cctx)
			if err != nil {
				return
			}
			video.Delete(cctx, ch, messaging.DeleteOptions{})
			media.Delete(cctx, ch, messaging.DeleteOptions{})
			messaging.Queue{Name: sqName}.Delete(cctx, ch, messaging.DeleteOptions{})
			messaging.Exchange{Name: sqName}.Delete(cctx, ch, messaging.DeleteOptions{})
		}()

		// The quickstart, with compression and a retry policy.
		p, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: media})
		if err != nil {
			t.Fatal(err)
		}
		body := map[string]any{"name": "/tmp/lolcat1.avi", "size": int64(1301013)}
		if err := p.Publish(ctx, body, messaging.PublishOptions{RoutingKey: "video", Compression: "gzip",
			Declare: []messaging.Declaration{video}, Retry: true, RetryPolicy: messaging.RetryPolicy{MaxRetries: 3}}); err != nil {
			t.Fatal(err)
		}
		got := make(chan any, 1)
		c, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{video},
			Callbacks: []messaging.Callback{func(b any, m *messaging.Message) { got <- b; m.Ack() }}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Consume(ctx); err != nil {
			t.Fatal(err)
		}
		for len(got) == 0 {
			if err := conn.DrainEvents(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if v := <-got; !reflect.DeepEqual(v, body) {
			t.Errorf("got %v", v)
		}
		if err := c.Cancel(ctx); err != nil {
			t.Error(err)
		}

		// The simple interface.
		sq, err := messaging.NewSimpleQueue(ctx, conn, sqName, messaging.SimpleQueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sq.Close()
		if err := sq.Put(ctx, "hello", messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		m, err := sq.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := m.Decode(); v != "hello" || err != nil {
			t.Errorf("simple got %v, %v", v, err)
		}
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
	})
}
