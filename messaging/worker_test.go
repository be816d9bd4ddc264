package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

type readyEvent struct {
	conn *messaging.Connection
	ch   *fakeChannel
	tag  string
}

func TestConsumerWorkerReconnects(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	tmpl, _ := newFake(t, "fake://a;fake://b", b, nil)
	ready := make(chan readyEvent, 4)
	got := make(chan any, 4)
	var connErrs []time.Duration
	revived, ended := 0, 0
	w, err := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		Consumers: func(conn *messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{{Name: "q"}},
				Callbacks: []messaging.Callback{func(body any, m *messaging.Message) { got <- body; m.Ack() }}}}, nil
		},
		OnConnectionRevived: func(*messaging.Connection) { revived++ },
		OnConsumeReady: func(conn *messaging.Connection, cs []*messaging.Consumer) {
			ch, err := conn.DefaultChannel(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			ready <- readyEvent{conn, ch.(*fakeChannel), cs[0].ConsumerTags()["q"]}
		},
		OnConsumeEnd:      func(*messaging.Connection) { ended++ },
		OnConnectionError: func(err error, d time.Duration) { connErrs = append(connErrs, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	ev := <-ready
	ev.ch.deliver(ev.tag, &transport.Message{Body: []byte("one"), ContentType: "text/plain",
		DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "d1"}})
	if v := <-got; v != "one" {
		t.Errorf("got %v", v)
	}
	// Break the connection; the next dial (to b) fails once, then a works.
	b.mu.Lock()
	b.dialFail = 1
	b.mu.Unlock()
	b.lastConn().kill()
	var ev2 readyEvent
	select {
	case ev2 = <-ready:
	case err := <-done:
		t.Fatalf("Run returned %v instead of reconnecting", err)
	}
	if ev2.conn == ev.conn || ev2.ch == ev.ch {
		t.Error("not a new connection")
	}
	ev2.ch.deliver(ev2.tag, &transport.Message{Body: []byte("two"), ContentType: "text/plain",
		DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "d2"}})
	if v := <-got; v != "two" {
		t.Errorf("got %v", v)
	}
	w.Stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if revived != 2 || ended != 2 || len(connErrs) != 1 {
		t.Errorf("revived %d, ended %d, connection errors %v", revived, ended, connErrs)
	}
	if dials := b.dialed(); len(dials) != 3 {
		t.Errorf("dials %v", dials)
	}
	if tmpl.Connected() {
		t.Error("the template connection was used")
	}
}

func TestConsumerWorkerGivesUp(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{dialFail: 100}
	tmpl, _ := newFake(t, "fake://a", b, nil)
	w, _ := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		Consumers:    func(*messaging.Connection) ([]messaging.ConsumerOptions, error) { return nil, nil },
		ConnectRetry: messaging.RetryPolicy{MaxRetries: 2},
	})
	err := w.Run(ctx)
	if !errors.Is(err, messaging.ErrOperational) {
		t.Errorf("Run = %v", err)
	}
	if n := len(b.dialed()); n != 3 {
		t.Errorf("%d dials", n)
	}
	// A failing Consumers function stops the worker with its error.
	bad := errors.New("no consumers for you")
	w2, _ := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) { return nil, bad }})
	b.mu.Lock()
	b.dialFail = 0
	b.mu.Unlock()
	if err := w2.Run(ctx); !errors.Is(err, bad) {
		t.Errorf("Run = %v", err)
	}
	// Stopped before running, and a cancelled context.
	w2.Stop()
	if err := w2.Run(ctx); err != nil {
		t.Errorf("stopped Run = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.Run(cctx); err != nil {
		t.Errorf("cancelled Run = %v", err)
	}
	if _, err := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{}); err == nil {
		t.Error("no Consumers function accepted")
	}
}

// The default decode-error handler of a worker logs and acknowledges, as
// Kombu's mixin.
func TestConsumerWorkerDecodeError(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	tmpl, _ := newFake(t, "fake://a", b, nil)
	ready := make(chan readyEvent, 1)
	w, _ := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		Consumers: func(conn *messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{{Name: "q"}},
				Callbacks: []messaging.Callback{func(any, *messaging.Message) { t.Error("callback called") }}}}, nil
		},
		OnConsumeReady: func(conn *messaging.Connection, cs []*messaging.Consumer) {
			ch, _ := conn.DefaultChannel(ctx)
			ready <- readyEvent{conn, ch.(*fakeChannel), cs[0].ConsumerTags()["q"]}
		},
	})
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	ev := <-ready
	acked := make(chan struct{})
	ev.ch.deliver(ev.tag, &transport.Message{Body: []byte("{"), ContentType: "application/json",
		DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "bad"}})
	ev.conn.Hub() // the hub is being driven by Run
	h, _ := ev.conn.Hub()
	h.Post(func() { close(acked) })
	<-acked
	w.Stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	ev.ch.mu.Lock()
	defer ev.ch.mu.Unlock()
	if len(ev.ch.acks) != 1 || ev.ch.acks[0] != "bad" {
		t.Errorf("acks %v", ev.ch.acks)
	}
}
