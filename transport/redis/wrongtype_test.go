package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// One consumed queue's key holds a non-list value: the pop script must skip
// it and still return what it took from the good queue. (It used to RPOP
// and record the good queue's messages, then fail on the bad key; Redis
// kept the earlier writes, so the messages were out of their list,
// recorded, and never delivered, and every reconnect repeated it.)
func TestWrongTypeKeyDoesNotStrandMessages(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	for i := 0; i < 5; i++ {
		if err := ch.Publish(ctx, textMsg(fmt.Sprint(i)), "", "good", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.rdb.Set(ctx, e.prefix+"bad", "not a list", 0)
	defer e.rdb.Del(ctx, e.prefix+"bad")
	if _, err := ch.Get(ctx, "bad", false); err == nil {
		t.Error("Get on a key that is not a list returned no error")
	}
	got := make(chan *transport.Message, 10)
	for _, q := range []string{"good", "bad"} {
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
	}
	var bodies []string
	for deadline := time.After(10 * time.Second); len(bodies) < 5; {
		select {
		case m := <-got:
			bodies = append(bodies, string(m.Body))
		case <-deadline:
			ll, _ := e.rdb.LLen(ctx, e.prefix+"good").Result()
			hl, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result()
			t.Fatalf("of 5 messages, %d delivered (%v) and %d in their list; %d unacked records", len(bodies), bodies, ll, hl)
		}
	}
	if fmt.Sprint(bodies) != "[0 1 2 3 4]" {
		t.Errorf("delivered %v, want [0 1 2 3 4]", bodies)
	}
	if hl, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); hl != 5 {
		t.Errorf("%d unacked records, want 5 (one per delivered message)", hl)
	}
}
