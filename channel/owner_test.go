package channel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// idleHub returns a hub that nobody drives unless the test does.
func idleHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// deadline bounds a Drive: a guard against a hang, not a timed assertion.
func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGetAckUndrivenNeverRunsCallbacks is Kombu's polling loop
// ("m = queue.get(); m.ack()") on a channel whose hub nobody drives, while
// a consumer of another queue has messages waiting. Each ack reaches the
// store before Ack returns, and the acking goroutine never runs the
// consumer's callback (it used to: Ack ran all pending hub work). The
// consumer gets its messages when the hub is driven.
func TestGetAckUndrivenNeverRunsCallbacks(t *testing.T) {
	h := idleHub(t)
	fs := newFakeStore(channel.NewState())
	ps := &pullStore{fakeStore: fs}
	ch := channel.New(h, ps, channel.Options{State: fs.state})
	t.Cleanup(func() { ch.Close() })

	var calls atomic.Int32
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "busy", NoAck: true},
		func(*transport.Message) { calls.Add(1) })
	mustNoErr(t, err)
	mustNoErr(t, h.RunOnce(0)) // the consumer starts; "busy" is empty
	for i := range 3 {
		mustNoErr(t, ch.Publish(ctx, body(fmt.Sprint("busy ", i)), "", "busy", transport.PublishOptions{}))
	}
	ch.Wake() // a pull is now posted to the hub

	done := make(chan struct{})
	go func() { // the polling loop, on a goroutine that never drives the hub
		defer close(done)
		for i := range 50 {
			mustPublish(t, ch, fmt.Sprint(i))
			m, err := ch.Get(ctx, "q", false)
			if err != nil {
				t.Error(err)
				return
			}
			tag := m.DeliveryInfo.DeliveryTag
			if err := ch.Ack(tag); err != nil {
				t.Error(err)
				return
			}
			if got := fs.settled(); len(got) != i+1 || got[i] != "ack:"+tag {
				t.Errorf("after Ack %d returned the store has settled %v", i, got[max(0, len(got)-1):])
				return
			}
		}
		// A requeue is back in its queue when Reject returns.
		mustPublish(t, ch, "again")
		m, err := ch.Get(ctx, "q", false)
		if err != nil {
			t.Error(err)
			return
		}
		mustNoErr(t, ch.Reject(m.DeliveryInfo.DeliveryTag, true))
		if got := fs.settled(); got[len(got)-1] != "requeue:"+m.DeliveryInfo.DeliveryTag {
			t.Errorf("after Reject the store has settled %v", got[len(got)-1])
		}
	}()
	<-done
	if n := calls.Load(); n != 0 {
		t.Fatalf("the consumer's callback ran %d times while nobody drove the hub", n)
	}
	mustNoErr(t, h.Drive(deadline(t), func() bool { return calls.Load() == 3 }))
}

func mustPublish(t *testing.T, ch *channel.Channel, s string) {
	t.Helper()
	if err := ch.Publish(ctx, body(s), "", "q", transport.PublishOptions{}); err != nil {
		t.Error(err)
	}
}

// TestUndrivenAckReopensWindowOnDriver: an ack made while nobody drives
// the hub frees the slot in the prefetch window at once, but the store is
// asked to resume (which delivers) only by the next driver.
func TestUndrivenAckReopensWindowOnDriver(t *testing.T) {
	h := idleHub(t)
	st := newFakeStore(channel.NewState())
	ch := channel.New(h, st, channel.Options{State: st.state})
	t.Cleanup(func() { ch.Close() })
	mustNoErr(t, ch.Qos(ctx, 1))
	c, _ := consume(t, ch, "q", false)
	mustNoErr(t, h.RunOnce(0))
	var full bool
	mustNoErr(t, h.Call(ctx, func() {
		ch.Deliver("q", tagged("a", "t1"))
		full = ch.Room() == 0
	}))
	if !full || len(c.got) != 1 {
		t.Fatalf("window full %v, delivered %d", full, len(c.got))
	}
	st.mu.Lock()
	resumes := st.resumes
	st.mu.Unlock()

	acked := make(chan struct{})
	go func() { defer close(acked); mustNoErr(t, ch.Ack("t1")) }()
	<-acked
	if got := st.settled(); !slices.Equal(got, []string{"ack:t1"}) {
		t.Fatalf("after Ack returned: settled %v", got)
	}
	st.mu.Lock()
	early := st.resumes - resumes
	st.mu.Unlock()
	if early != 0 {
		t.Fatalf("the store was resumed %d times off the hub", early)
	}
	mustNoErr(t, h.RunOnce(0))
	var room int
	mustNoErr(t, h.Call(ctx, func() { room = ch.Room() }))
	st.mu.Lock()
	later := st.resumes - resumes
	st.mu.Unlock()
	if later != 1 || room != 1 {
		t.Fatalf("after a turn: %d resumes, room %d; want 1 and 1", later, room)
	}
}

// TestUndrivenConcurrentAcks: acks from many goroutines while nobody
// drives the hub are all settled, each once, by the time they return.
func TestUndrivenConcurrentAcks(t *testing.T) {
	h := idleHub(t)
	st := newFakeStore(channel.NewState())
	ch := channel.New(h, st, channel.Options{State: st.state})
	t.Cleanup(func() { ch.Close() })
	c, _ := consume(t, ch, "q", false)
	const n = 1000
	mustNoErr(t, h.Call(ctx, func() {
		for i := range n {
			ch.Deliver("q", tagged("m", fmt.Sprint(i)))
		}
	}))
	if len(c.got) != n {
		t.Fatalf("delivered %d", len(c.got))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				mustNoErr(t, ch.Ack(tagOf(c, i)))
			}
		})
	}
	wg.Wait()
	got := st.settled()
	slices.Sort(got)
	if len(got) != n || len(slices.Compact(got)) != n {
		t.Fatalf("%d settlements (%d distinct) once every Ack returned, want %d", len(got), len(slices.Compact(got)), n)
	}
}

// TestCloseFromCallback: Close from a hub callback returns
// hub.ErrInCallback at once (it used to wait for itself for ever) and
// leaves the channel open; Close from elsewhere then works.
func TestCloseFromCallback(t *testing.T) {
	ch, st := newChannel(t, channel.Options{})
	var closeErr error
	mustNoErr(t, ch.Hub().Call(ctx, func() { closeErr = ch.Close() }))
	if !errors.Is(closeErr, hub.ErrInCallback) {
		t.Fatalf("Close from a callback: %v, want ErrInCallback", closeErr)
	}
	mustNoErr(t, ch.Publish(ctx, body("still open"), "", "q", transport.PublishOptions{}))
	mustNoErr(t, ch.Close())
	st.mu.Lock()
	closed := st.closed
	st.mu.Unlock()
	if closed != 1 {
		t.Fatalf("store closed %d times", closed)
	}
}
