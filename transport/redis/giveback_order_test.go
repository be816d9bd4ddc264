package redis

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// A pop in flight when its queue's consumer is cancelled: its messages go
// back to the head of their list so that they are consumed again in the
// order they were popped. (They used to go back one RPUSH each, in pop
// order, which reversed them.) CLIENT PAUSE holds the pop on the server,
// so the test runs on a private redis-server.
func TestGiveBackKeepsPopOrder(t *testing.T) {
	redisURL(t)
	srv := startPrivateRedis(t, false)
	t.Setenv("KOMBU_TEST_REDIS_URL", srv.url)
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	for i := 1; i <= 3; i++ {
		if err := ch.Publish(ctx, textMsg(fmt.Sprint("m", i)), "", "oq", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	admin := srv.client()
	defer admin.Close()
	// The consume socket is connected (and waiting on an empty queue)
	// before the pause, which would hold its handshake too.
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "idle"}, func(*transport.Message) {}); err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, ch.st, rWait)
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	tag, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "oq"}, func(m *transport.Message) { t.Errorf("delivered %q", m.Body) })
	if err != nil {
		t.Fatal(err)
	}
	waitConsumeSocket(t, e, ch.st, rScript)
	if err := ch.Cancel(ctx, tag); err != nil {
		t.Fatal(err)
	}
	admin.Do(ctx, "CLIENT", "UNPAUSE")
	// Wait for the give-back (the pop's reply comes after UNPAUSE).
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := admin.LLen(ctx, e.prefix+"oq").Result()
		if err == nil && n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("oq holds %d messages (err %v), want 3 given back", n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var order []string
	for {
		m, err := ch.Get(ctx, "oq", true)
		if errors.Is(err, transport.ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, string(m.Body))
	}
	if n, _ := admin.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d unacked records left after the give-back, want 0", n)
	}
	if fmt.Sprint(order) != "[m1 m2 m3]" {
		t.Errorf("consumed after give-back in order %v, want [m1 m2 m3]", order)
	}
}
