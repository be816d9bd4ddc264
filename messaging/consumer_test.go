package messaging_test

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// memConn returns a connection to a memory broker of the test's own.
func memConn(t *testing.T) *messaging.Connection {
	t.Helper()
	c, err := messaging.NewConnection("memory://"+strings.ReplaceAll(t.Name(), "/", ".")+"-"+messaging.NewUUID()[:8], messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Kombu test case 70 (test_accept).
func TestConsumerAccept(t *testing.T) {
	c := memConn(t)
	cons, err := messaging.NewConsumer(c, messaging.ConsumerOptions{Accept: []string{"json", "pickle"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.Accept(); !reflect.DeepEqual(got, []string{"application/json", "application/x-python-serialize"}) {
		t.Errorf("accept %v", got)
	}
	cons, _ = messaging.NewConsumer(c, messaging.ConsumerOptions{})
	if got := cons.Accept(); !reflect.DeepEqual(got, []string{"application/data", "application/json", "text/plain"}) {
		t.Errorf("default accept %v", got)
	}
	if _, err := messaging.NewConsumer(c, messaging.ConsumerOptions{Accept: []string{"nope"}}); !errors.Is(err, messaging.ErrNotInstalled) {
		t.Errorf("unknown accept: %v", err)
	}
}

// Kombu test case 70 (test_accept__content_disallowed) on memory.
func TestConsumerContentDisallowed(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.NewQueue("q", messaging.NewExchange("e", ""), "k")
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{Exchange: q.Exchange, RoutingKey: "k"})
	if err := p.Publish(ctx, []byte("\x80\x04K\x01."), messaging.PublishOptions{
		ContentType: "application/x-python-serialize", Declare: []messaging.Declaration{q}}); err != nil {
		t.Fatal(err)
	}
	called := false
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) { called = true }}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.DrainEvents(ctx)
	if !errors.Is(err, messaging.ErrContentDisallowed) || !errors.Is(err, messaging.ErrDecode) {
		t.Fatalf("DrainEvents = %v", err)
	}
	var de *messaging.DecodeError
	if !errors.As(err, &de) || de.Queue != "q" || de.DeliveryTag == "" {
		t.Errorf("decode error %+v", de)
	}
	if called {
		t.Error("the callback was called")
	}
	// The message was rejected, not left unacknowledged or requeued.
	ch, _ := c.DefaultChannel(ctx)
	if n, err := q.Purge(ctx, ch); err != nil || n != 0 {
		t.Errorf("queue holds %d (%v)", n, err)
	}
}

// Kombu test case 72 (test_on_decode_error_callback).
func TestConsumerOnDecodeError(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.Queue{Name: "q"}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "q"})
	if err := p.Publish(ctx, []byte("{not json"), messaging.PublishOptions{ContentType: "application/json",
		Declare: []messaging.Declaration{q}}); err != nil {
		t.Fatal(err)
	}
	var gotMsg *messaging.Message
	var gotErr error
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) { t.Error("callback called") }},
		OnDecodeError: func(m *messaging.Message, err error) {
			gotMsg, gotErr = m, err
			if err := m.Ack(); err != nil {
				t.Error(err)
			}
		}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DrainEvents(ctx); err != nil {
		t.Fatalf("DrainEvents = %v, want nil", err)
	}
	if gotMsg == nil || string(gotMsg.Body) != "{not json" || !errors.Is(gotErr, messaging.ErrDecode) {
		t.Errorf("on_decode_error got %v, %v", gotMsg, gotErr)
	}
}

// A malformed envelope (transport.Message.Err) goes to OnDecodeError, or is
// rejected and reported; never dropped silently.
func TestConsumerMalformedEnvelope(t *testing.T) {
	ctx := testCtx(t)
	for _, withHandler := range []bool{true, false} {
		t.Run(strconv.FormatBool(withHandler), func(t *testing.T) {
			b := &fakeBroker{}
			c, _ := newFake(t, "fake://a", b, nil)
			var handled error
			opts := messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "q"}},
				Callbacks: []messaging.Callback{func(any, *messaging.Message) { t.Error("callback called") }}}
			if withHandler {
				opts.OnDecodeError = func(m *messaging.Message, err error) { handled = err }
			}
			cons, _ := messaging.NewConsumer(c, opts)
			if err := cons.Consume(ctx); err != nil {
				t.Fatal(err)
			}
			ch, _ := c.DefaultChannel(ctx)
			fch := ch.(*fakeChannel)
			fch.deliver(cons.ConsumerTags()["q"], &transport.Message{Body: []byte("garbage"),
				Err: transport.ErrBadEnvelope, DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "t1", Queue: "q"}})
			err := c.DrainEvents(ctx)
			if withHandler {
				if err != nil || !errors.Is(handled, transport.ErrBadEnvelope) {
					t.Errorf("DrainEvents = %v, handler got %v", err, handled)
				}
				return
			}
			if !errors.Is(err, transport.ErrBadEnvelope) || !errors.Is(err, messaging.ErrDecode) {
				t.Errorf("DrainEvents = %v", err)
			}
			if !reflect.DeepEqual(fch.rejects, []string{"t1:false"}) {
				t.Errorf("rejects %v", fch.rejects)
			}
		})
	}
}

func TestConsumerNoCallbacks(t *testing.T) {
	c := memConn(t)
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "q"}}})
	if err := cons.Consume(testCtx(t)); !errors.Is(err, messaging.ErrNoCallbacks) {
		t.Errorf("err = %v", err)
	}
}

// Kombu test case 73 (test_consumer_tag_prefix).
func TestConsumerTagPrefix(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	cb := []messaging.Callback{func(any, *messaging.Message) {}}
	c1, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "a"}, {Name: "b"}},
		TagPrefix: "mytag-", Callbacks: cb})
	if err := c1.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	tags := c1.ConsumerTags()
	na, ea := strconv.Atoi(strings.TrimPrefix(tags["a"], "mytag-"))
	nb, eb := strconv.Atoi(strings.TrimPrefix(tags["b"], "mytag-"))
	if !strings.HasPrefix(tags["a"], "mytag-") || ea != nil || eb != nil || nb != na+1 {
		t.Errorf("tags %v", tags)
	}
	c2, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "c"}}, Callbacks: cb})
	if err := c2.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	tag := c2.ConsumerTags()["c"]
	n, err := strconv.Atoi(strings.TrimPrefix(tag, messaging.DefaultTagPrefix))
	if err != nil || n <= nb {
		t.Errorf("default-prefix tag %q: the counter is process-wide", tag)
	}
}

func TestConsumerLifecycle(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	cb := []messaging.Callback{func(any, *messaging.Message) {}}
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{{Name: "a"}}, Callbacks: cb,
		PrefetchCount: 7})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	ch, _ := c.DefaultChannel(ctx)
	fch := ch.(*fakeChannel)
	if fch.qos != 7 {
		t.Errorf("prefetch %d", fch.qos)
	}
	if _, err := cons.AddQueue(ctx, messaging.Queue{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if len(cons.ConsumerTags()) != 1 || !cons.ConsumingFrom("b") {
		t.Error("AddQueue must not start consuming")
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	if len(cons.ConsumerTags()) != 2 || len(fch.consumers) != 2 {
		t.Errorf("tags %v", cons.ConsumerTags())
	}
	if err := cons.CancelByQueue(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if cons.ConsumingFrom("a") || len(fch.consumers) != 1 {
		t.Error("CancelByQueue")
	}
	if n, err := cons.Purge(ctx); err != nil || n != 3 {
		t.Errorf("Purge = %d, %v", n, err)
	}
	if err := cons.Qos(ctx, 3); err != nil || fch.qos != 3 {
		t.Errorf("Qos: %v %d", err, fch.qos)
	}
	if err := cons.Recover(ctx); err != nil {
		t.Error(err)
	}
	if err := cons.Flow(ctx, false); !errors.Is(err, transport.ErrUnsupported) {
		t.Errorf("Flow on a channel without it: %v", err)
	}
	if err := cons.Cancel(ctx); err != nil || len(fch.consumers) != 0 || len(cons.ConsumerTags()) != 0 {
		t.Errorf("Cancel: %v", err)
	}
	// A reconnection: Consume revives on the new default channel.
	b.lastConn().kill()
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	ch2, _ := c.DefaultChannel(ctx)
	if ch2 == ch || len(ch2.(*fakeChannel).consumers) != 1 || ch2.(*fakeChannel).qos != 3 {
		t.Error("not revived on the new channel")
	}
}

// Consumer methods and deliveries from many goroutines (run with -race).
func TestConsumerConcurrent(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.Queue{Name: "q"}
	var mu sync.Mutex
	got := 0
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			mu.Lock()
			got++
			mu.Unlock()
			m.Ack()
		}}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "q"})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				if err := p.Publish(ctx, j, messaging.PublishOptions{}); err != nil {
					t.Error(err)
					return
				}
				cons.RegisterCallback(func(any, *messaging.Message) {})
				_ = cons.ConsumingFrom("q")
			}
		}()
	}
	wg.Wait()
	for {
		mu.Lock()
		n := got
		mu.Unlock()
		if n == 100 {
			break
		}
		if err := c.DrainEvents(ctx); err != nil {
			t.Fatalf("after %d: %v", n, err)
		}
	}
}
