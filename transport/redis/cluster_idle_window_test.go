package redis

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestClusterIdleWindowWakes consumes six idle queues (on three masters)
// through one channel whose prefetch window (1) is smaller than the number
// of queues, then, round after round, publishes one message to each of a
// few queues at once, through another connection, as a sweep restoring a
// killed consumer's messages does. Every message must be delivered: the
// store that holds the window's one slot in its wait must give it up to
// the stores whose queues received a message. (internal/faulttest's
// TestFaultKillCluster found a restored message left in its list while the
// consumer idled, at prefetch 1 with six queues.)
func TestClusterIdleWindowWakes(t *testing.T) {
	prefix := uniq("cidle") + ":"
	ch, _ := clusterChannel(t, prefix, nil)
	pub, _ := clusterChannel(t, prefix, nil)
	ctx := ctxT(t)
	if err := ch.Qos(ctx, 1); err != nil {
		t.Fatal(err)
	}
	queues := []string{"fq0000", "fq0001", "fq0002", "fq0003", "fq0004", "fq0005"}
	got := consumeAcking(t, ch, queues, 100)
	const rounds = 15
	for r := range rounds {
		// Idle long enough for the waits to time out (brpop_timeout 1 s) now
		// and then.
		time.Sleep(rand.N(1500 * time.Millisecond))
		want := map[string]string{}
		for _, i := range rand.Perm(len(queues))[:1+rand.N(3)] {
			body := queues[i] + "/" + strconv.Itoa(r)
			want[body] = queues[i]
			if err := pub.Publish(ctx, textMsg(body), "", queues[i], transport.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.After(15 * time.Second) // a hang guard: brpop_timeout is 1 s
		for len(want) > 0 {
			select {
			case b := <-got:
				delete(want, b)
			case <-deadline:
				t.Fatalf("round %d: not delivered within 15 s of their publish: %v", r, want)
			}
		}
	}
}

// consumeAcking consumes queues on ch, acknowledging each message, and
// returns a channel (of capacity buf) that receives each body.
func consumeAcking(t *testing.T, ch transport.Channel, queues []string, buf int) <-chan string {
	t.Helper()
	got := make(chan string, buf)
	for _, q := range queues {
		if _, err := ch.Consume(ctxT(t), transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			got <- string(m.Body)
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return got
}
