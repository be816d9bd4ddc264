package messaging_test

import (
	"bytes"
	"compress/zlib"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

func testMessage(ch transport.Channel, tm *transport.Message, noAck bool, accept ...string) *messaging.Message {
	var as *serializer.AcceptSet
	if accept != nil {
		as, _ = serializer.Default().PrepareAccept(accept)
	}
	if tm.DeliveryInfo.DeliveryTag == "" {
		tm.DeliveryInfo.DeliveryTag = "tag1"
	}
	return messaging.NewTestMessage(tm, ch, serializer.Default(), compression.Default(), as, noAck)
}

// Kombu test case 71 (test_basic_ack_twice, reject_twice, requeue_twice).
func TestMessageStateTwice(t *testing.T) {
	settle := map[string]func(*messaging.Message) error{
		"ack":     (*messaging.Message).Ack,
		"reject":  (*messaging.Message).Reject,
		"requeue": (*messaging.Message).Requeue,
	}
	states := map[string]string{"ack": "ACK", "reject": "REJECTED", "requeue": "REQUEUED"}
	for first, f := range settle {
		for second, g := range settle {
			ch := &fakeChannel{}
			m := testMessage(ch, &transport.Message{Body: []byte("x")}, false)
			if m.Acknowledged() || m.State() != messaging.Received {
				t.Fatal("new message settled")
			}
			if err := f(m); err != nil {
				t.Fatal(err)
			}
			err := g(m)
			var se *messaging.MessageStateError
			if !errors.Is(err, messaging.ErrMessageState) || !errors.As(err, &se) {
				t.Fatalf("%s then %s: %v", first, second, err)
			}
			want := "messaging: Message already acknowledged with state: " + states[first]
			if err.Error() != want {
				t.Errorf("%s then %s: %q, want %q", first, second, err.Error(), want)
			}
			if !m.Acknowledged() || m.State().String() != states[first] {
				t.Errorf("state %v", m.State())
			}
			if n := len(ch.acks) + len(ch.rejects); n != 1 {
				t.Errorf("%d settlements reached the channel", n)
			}
		}
	}
	// No channel.
	m := testMessage(nil, &transport.Message{}, false)
	if err := m.Ack(); !errors.Is(err, messaging.ErrMessageState) || !strings.Contains(err.Error(), "does not have a receiving channel") {
		t.Errorf("no channel: %v", err)
	}
	// A no-ack message needs no acknowledgement: Ack does nothing.
	ch := &fakeChannel{}
	m = testMessage(ch, &transport.Message{}, true)
	if err := m.Ack(); err != nil || len(ch.acks) != 0 || m.Acknowledged() {
		t.Errorf("no-ack Ack: %v, %v", err, ch.acks)
	}
}

func TestMessageSettleConcurrent(t *testing.T) {
	ch := &fakeChannel{}
	m := testMessage(ch, &transport.Message{}, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.Ack() == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 || len(ch.acks) != 1 {
		t.Errorf("%d acks succeeded, %d reached the channel", ok, len(ch.acks))
	}
}

func TestMessageDecode(t *testing.T) {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write([]byte(`{"name": "/tmp/lolcat1.avi", "size": 1301013}`))
	w.Close()
	m := testMessage(&fakeChannel{}, &transport.Message{Body: z.Bytes(), ContentType: "application/json",
		ContentEncoding: "utf-8", Headers: map[string]any{"compression": "application/x-gzip"}}, false, "json")
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	v, err := m.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if v.(map[string]any)["size"] != int64(1301013) {
		t.Errorf("decoded %v", v)
	}
	v2, _ := m.Payload()
	if v2.(map[string]any)["name"] != "/tmp/lolcat1.avi" {
		t.Error("Payload")
	}
	var typed struct {
		Name string `json:"name"`
		Size int    `json:"size"`
	}
	if err := m.DecodeInto(&typed); err != nil || typed.Name != "/tmp/lolcat1.avi" || typed.Size != 1301013 {
		t.Errorf("DecodeInto: %+v, %v", typed, err)
	}

	// A decompression failure is recorded, not raised, until Decode.
	bad := testMessage(&fakeChannel{}, &transport.Message{Body: []byte("not zlib"), ContentType: "application/json",
		Headers: map[string]any{"compression": "application/x-gzip"}}, false)
	if bad.Err() == nil || string(bad.Body) != "not zlib" {
		t.Fatalf("Err = %v, Body %q", bad.Err(), bad.Body)
	}
	if _, err := bad.Decode(); !errors.Is(err, compression.ErrCorrupt) || !errors.Is(err, messaging.ErrDecode) {
		t.Errorf("Decode = %v", err)
	}
	// A refused content type.
	ref := testMessage(&fakeChannel{}, &transport.Message{Body: []byte("x"), ContentType: "application/x-yaml"}, false, "json")
	if _, err := ref.Decode(); !errors.Is(err, messaging.ErrContentDisallowed) {
		t.Errorf("refused: %v", err)
	}
	if err := ref.DecodeInto(new(any)); !errors.Is(err, messaging.ErrContentDisallowed) {
		t.Errorf("refused DecodeInto: %v", err)
	}
}

func TestAckLogError(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	m := testMessage(&fakeChannel{}, &transport.Message{}, false)
	m.AckLogError(log)
	if buf.Len() != 0 || m.State() != messaging.Acked {
		t.Fatalf("first ack logged %q", buf.String())
	}
	m.AckLogError(log)
	if !strings.Contains(buf.String(), "already acknowledged") {
		t.Errorf("second ack logged %q", buf.String())
	}
	m.RejectLogError(nil) // a nil logger discards
}

func TestQueueGet(t *testing.T) {
	ctx := testCtx(t)
	c := memConn(t)
	ch, err := c.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := messaging.Queue{Name: "q"}
	if _, err := q.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, ch, messaging.GetOptions{}); !errors.Is(err, messaging.ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "q"})
	if err := p.Publish(ctx, map[string]any{"hello": "world"}, messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := q.Get(ctx, ch, messaging.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m.Decode(); err != nil || v.(map[string]any)["hello"] != "world" {
		t.Errorf("payload %v, %v", v, err)
	}
	if err := m.Ack(); err != nil {
		t.Error(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := q.Get(ctx, ch, messaging.GetOptions{}); !errors.Is(err, messaging.ErrEmpty) {
			t.Errorf("get %d after: %v", i, err)
		}
	}
}
