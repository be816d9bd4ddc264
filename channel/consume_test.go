package channel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

func consume(t *testing.T, ch *channel.Channel, queue string, noAck bool) (*collector, string) {
	t.Helper()
	c := &collector{}
	tag, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: queue, NoAck: noAck}, c.fn)
	mustNoErr(t, err)
	return c, tag
}

func tagged(s, tag string) *transport.Message {
	m := body(s)
	m.DeliveryInfo.DeliveryTag = tag
	return m
}

func TestPushDeliverAckBatch(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	h := ch.Hub()
	mustNoErr(t, ch.Qos(ctx, 2))
	c, ctag := consume(t, ch, "q", false)
	onHub(t, h, func() {
		if len(st.consuming) != 1 || !slices.Equal(st.consuming[0], []string{"q"}) {
			t.Errorf("Consuming calls %v", st.consuming)
		}
		if !ch.CanConsume() || ch.Room() != 2 || ch.NoAck("q") {
			t.Errorf("CanConsume %v Room %d NoAck %v", ch.CanConsume(), ch.Room(), ch.NoAck("q"))
		}
		ch.Deliver("q", tagged("a", "t1"))
		bad := &transport.Message{Body: []byte("{not json"), Err: transport.ErrBadEnvelope}
		ch.Deliver("q", bad)
		if ch.Room() != 0 || ch.CanConsume() {
			t.Errorf("window should be full: room %d", ch.Room())
		}
	})
	var tags []string
	onHub(t, h, func() {
		if len(c.got) != 2 {
			t.Fatalf("delivered %d", len(c.got))
		}
		bad := c.got[1]
		if bad.Err == nil || bad.DeliveryInfo.DeliveryTag == "" {
			t.Errorf("malformed message delivered as %+v", bad)
		}
		for _, m := range c.got {
			if m.DeliveryInfo.ConsumerTag != ctag || m.DeliveryInfo.Queue != "q" {
				t.Errorf("delivery info %+v", m.DeliveryInfo)
			}
			tags = append(tags, m.DeliveryInfo.DeliveryTag)
		}
		// Acks made in one turn reach the store in one batch.
		ch.Ack(tags[0])
		ch.Ack(tags[1])
		ch.Ack("from-elsewhere")
	})
	onHub(t, h, func() {
		if len(st.settles) != 1 || len(st.settles[0]) != 3 {
			t.Fatalf("settle batches %v", st.settles)
		}
		b := st.settles[0]
		if b[0].Op != channel.OpAck || b[0].Tag != "t1" || b[0].Message != c.got[0] || b[2].Message != nil {
			t.Errorf("batch %+v", b)
		}
		if st.resumes == 0 {
			t.Error("no Resume after the window reopened")
		}
		if ch.Room() != 2 {
			t.Errorf("room %d", ch.Room())
		}
	})
}

func TestRejectAndUnknownDelivery(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	h := ch.Hub()
	c, _ := consume(t, ch, "q", false)
	onHub(t, h, func() {
		ch.Deliver("q", tagged("a", "t1"))
		ch.Deliver("q", tagged("b", "t2"))
		ch.Deliver("other", tagged("c", "t3")) // nobody consumes it: requeued
	})
	mustNoErr(t, ch.Reject("t1", true))
	mustNoErr(t, ch.Reject("t2", false))
	if err := ch.Ack(""); !errors.Is(err, transport.ErrUnknownDeliveryTag) {
		t.Errorf("Ack(\"\"): %v", err)
	}
	onHub(t, h, func() {
		if len(c.got) != 2 {
			t.Errorf("delivered %d", len(c.got))
		}
		if got := st.settled(); !slices.Equal(got, []string{"requeue:t3", "requeue:t1", "drop:t2"}) {
			t.Errorf("settled %v", got)
		}
		if m := st.settles[0][0].Message; m == nil || m.DeliveryInfo.Queue != "other" {
			t.Errorf("requeue of an unconsumed queue carries %+v", m)
		}
	})
}

// Close: consumers cancelled, pending acks settled, the rest restored most
// recent first, store closed once.
func TestCloseRestoresLIFO(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	h := ch.Hub()
	consume(t, ch, "q", false)
	onHub(t, h, func() {
		for i := 1; i <= 4; i++ {
			ch.Deliver("q", tagged(fmt.Sprint(i), fmt.Sprint("t", i)))
		}
	})
	mustNoErr(t, ch.Ack("t2"))
	mustNoErr(t, ch.Close())
	mustNoErr(t, ch.Close()) // idempotent
	if got := st.settled(); !slices.Equal(got, []string{"ack:t2", "restore:t4", "restore:t3", "restore:t1"}) {
		t.Fatalf("settled %v", got)
	}
	if st.closed != 1 || !slices.Equal(st.consuming[len(st.consuming)-1], nil) {
		t.Fatalf("closed %d, consuming %v", st.closed, st.consuming)
	}
	for name, err := range map[string]error{
		"Publish": ch.Publish(ctx, body("x"), "", "q", transport.PublishOptions{}),
		"Ack":     ch.Ack("t1"),
		"Declare": ch.DeclareExchange(ctx, transport.Exchange{Name: "x"}),
	} {
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(*transport.Message) {}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Consume after Close: %v", err)
	}
}

func TestNoRestoreOnClose(t *testing.T) {
	ch, st := newChannel(t, channel.Options{NoRestoreOnClose: true})
	consume(t, ch, "q", false)
	onHub(t, ch.Hub(), func() { ch.Deliver("q", tagged("1", "t1")) })
	mustNoErr(t, ch.Close())
	if got := st.settled(); len(got) != 0 {
		t.Fatalf("settled %v", got)
	}
}

func TestRecover(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	c, _ := consume(t, ch, "q", false)
	onHub(t, ch.Hub(), func() {
		ch.Deliver("q", tagged("1", "t1"))
		ch.Deliver("q", tagged("2", "t2"))
	})
	mustNoErr(t, ch.Ack("t1"))
	mustNoErr(t, ch.Recover(ctx))
	onHub(t, ch.Hub(), func() {
		if got := st.settled(); !slices.Equal(got, []string{"ack:t1", "restore:t2"}) {
			t.Fatalf("settled %v", got)
		}
		if ch.Room() != channel.Unlimited || len(c.got) != 2 {
			t.Fatalf("room %d", ch.Room())
		}
	})
}

func TestCancel(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	h := ch.Hub()
	c1, tag1 := consume(t, ch, "q", true)
	c2, tag2 := consume(t, ch, "q", false)
	if tag1 == tag2 {
		t.Fatal("same generated tag twice")
	}
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q", ConsumerTag: tag1}, c1.fn); !errors.Is(err, channel.ErrConsumerTagInUse) {
		t.Fatalf("duplicate tag: %v", err)
	}
	onHub(t, h, func() {
		// Round robin between the two consumers; the first is no-ack.
		if !ch.NoAck("q") {
			t.Error("next consumer should be the no-ack one")
		}
		ch.Deliver("q", tagged("1", "t1"))
		ch.Deliver("q", tagged("2", "t2"))
		if len(c1.got) != 1 || len(c2.got) != 1 || ch.Room() != channel.Unlimited {
			t.Errorf("round robin: %d/%d", len(c1.got), len(c2.got))
		}
	})
	mustNoErr(t, ch.Cancel(ctx, tag1))
	mustNoErr(t, ch.Cancel(ctx, "unknown"))
	onHub(t, h, func() {
		ch.Deliver("q", tagged("3", "t3"))
		if len(c1.got) != 1 || len(c2.got) != 2 {
			t.Errorf("after cancel: %d/%d", len(c1.got), len(c2.got))
		}
	})
	mustNoErr(t, ch.Cancel(ctx, tag2))
	onHub(t, h, func() {
		ch.Deliver("q", tagged("4", "t4"))
		if len(c2.got) != 2 {
			t.Error("delivered to a cancelled consumer")
		}
		if got := st.settled(); !slices.Equal(got, []string{"requeue:t4"}) {
			t.Errorf("settled %v", got)
		}
		if last := st.consuming[len(st.consuming)-1]; len(last) != 0 {
			t.Errorf("Consuming after the last cancel: %v", last)
		}
	})
}

// A cancel made on another goroutine takes effect before the hub applies
// it: no delivery after Cancel returned.
func TestCancelBeforeHubSeesIt(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	c, tag := consume(t, ch, "q", false)
	onHub(t, ch.Hub(), func() {
		ch.Cancel(ctx, tag) // queued; the hub applies it next turn
		ch.Deliver("q", tagged("1", "t1"))
		if len(c.got) != 0 {
			t.Error("delivered after Cancel returned")
		}
	})
	onHub(t, ch.Hub(), func() {
		if got := st.settled(); !slices.Equal(got, []string{"requeue:t1"}) {
			t.Errorf("settled %v", got)
		}
	})
}

func TestGetRecordsUnacked(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	for _, s := range []string{"1", "2"} {
		mustNoErr(t, ch.Publish(ctx, body(s), "", "q", transport.PublishOptions{}))
	}
	m1, err := ch.Get(ctx, "q", false)
	mustNoErr(t, err)
	m2, err := ch.Get(ctx, "q", true)
	mustNoErr(t, err)
	if _, err := ch.Get(ctx, "q", false); !errors.Is(err, transport.ErrEmpty) {
		t.Fatalf("Get on empty: %v", err)
	}
	if m1.DeliveryInfo.Queue != "q" || m2.DeliveryInfo.Queue != "q" {
		t.Error("queue not set")
	}
	mustNoErr(t, ch.Close())
	if got := st.settled(); !slices.Equal(got, []string{"restore:" + m1.DeliveryInfo.DeliveryTag}) {
		t.Fatalf("settled %v", got)
	}
}

func TestPullStore(t *testing.T) {
	h := runHub(t)
	fs := newFakeStore(channel.NewState())
	ps := &pullStore{fakeStore: fs}
	ch := channel.New(h, ps, channel.Options{State: fs.state, PullBatch: 2})
	t.Cleanup(func() { ch.Close() })
	for i := range 5 {
		mustNoErr(t, ch.Publish(ctx, body(fmt.Sprint(i)), "", "q", transport.PublishOptions{}))
	}
	mustNoErr(t, ch.Qos(ctx, 3))
	c, _ := consume(t, ch, "q", false)
	onHub(t, h, func() {
		if got := bodies(c.got); !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Fatalf("pulled %v with a window of 3", got)
		}
		ch.Ack(tagOf(c, 0))
	})
	onHub(t, h, func() {
		if got := bodies(c.got); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
			t.Fatalf("after one ack: %v", got)
		}
		ch.Ack(tagOf(c, 1))
		ch.Ack(tagOf(c, 2))
		ch.Ack(tagOf(c, 3))
	})
	onHub(t, h, func() {
		if len(c.got) != 5 {
			t.Fatalf("delivered %d", len(c.got))
		}
	})
	// A message arriving later is pulled after Wake.
	mustNoErr(t, ch.Publish(ctx, body("late"), "", "q", transport.PublishOptions{}))
	ch.Wake()
	onHub(t, h, func() {
		if len(c.got) != 6 || string(c.got[5].Body) != "late" {
			t.Fatalf("after Wake: %v", bodies(c.got))
		}
	})
}

// Acks from many goroutines at once: each settled exactly once.
func TestConcurrentAcks(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	c, _ := consume(t, ch, "q", false)
	const n = 2000
	onHub(t, ch.Hub(), func() {
		for i := range n {
			ch.Deliver("q", tagged("m", fmt.Sprint(i)))
		}
	})
	var tags []string
	onHub(t, ch.Hub(), func() {
		for i := range c.got {
			tags = append(tags, tagOf(c, i))
		}
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := ch.Ack(tags[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	onHub(t, ch.Hub(), func() {
		got := st.settled()
		slices.Sort(got)
		if len(got) != n || len(slices.Compact(got)) != n {
			t.Fatalf("%d settlements", len(got))
		}
		for _, b := range st.settles {
			for _, s := range b {
				if s.Message == nil {
					t.Fatalf("tag %s settled without its message", s.Tag)
				}
			}
		}
	})
}

// Close after the hub was closed runs on the caller's goroutine.
func TestCloseAfterHubClosed(t *testing.T) {
	h := runHub(t)
	st := newFakeStore(channel.NewState())
	ch := channel.New(h, st, channel.Options{State: st.state})
	consume(t, ch, "q", false)
	onHub(t, h, func() { ch.Deliver("q", tagged("1", "t1")) })
	mustNoErr(t, h.Close())
	mustNoErr(t, ch.Close())
	if got := st.settled(); !slices.Equal(got, []string{"restore:t1"}) || st.closed != 1 {
		t.Fatalf("settled %v, closed %d", got, st.closed)
	}
}

func TestSettleErrorReturnedByClose(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	consume(t, ch, "q", false)
	onHub(t, ch.Hub(), func() { ch.Deliver("q", tagged("1", "t1")) })
	boom := errors.New("boom")
	st.mu.Lock()
	st.settleErr = boom
	st.mu.Unlock()
	if err := ch.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v", err)
	}
}

// A callback that panics does not lose the messages pulled with it.
func TestPullPanicKeepsMessages(t *testing.T) {
	h, err := hub.New(hub.Options{OnError: func(error) error { return nil }})
	mustNoErr(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()
	defer func() { cancel(); <-done; h.Close() }()
	fs := newFakeStore(channel.NewState())
	ps := &pullStore{fakeStore: fs}
	ch := channel.New(h, ps, channel.Options{State: fs.state})
	defer ch.Close()
	for _, s := range []string{"a", "b", "c"} {
		mustNoErr(t, ch.Publish(ctx, body(s), "", "q", transport.PublishOptions{}))
	}
	var got []string
	_, err = ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(m *transport.Message) {
		got = append(got, string(m.Body))
		if string(m.Body) == "a" {
			panic("boom")
		}
	})
	mustNoErr(t, err)
	onHub(t, h, func() {
		if !slices.Equal(got, []string{"a"}) {
			t.Errorf("delivered %v", got)
		}
		if len(fs.settles) != 1 || len(fs.settles[0]) != 2 {
			t.Fatalf("settles %v", fs.settled())
		}
		var restored []string
		for _, st := range fs.settles[0] {
			if st.Op != channel.OpRestore || st.Message.DeliveryInfo.Queue != "q" {
				t.Errorf("settlement %+v", st)
			}
			restored = append(restored, string(st.Message.Body))
		}
		if !slices.Equal(restored, []string{"c", "b"}) {
			t.Errorf("restored %v, want [c b] (most recent first)", restored)
		}
	})
}
