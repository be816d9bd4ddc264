package channel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kombu-go/kombu/transport"
)

func msg(tag string) *transport.Message {
	return &transport.Message{Body: []byte(tag), DeliveryInfo: transport.DeliveryInfo{DeliveryTag: tag}}
}

// Kombu test_QoS.test_can_consume plus restore order.
func TestQoSWindow(t *testing.T) {
	var q qos
	q.init()
	q.prefetch = 10
	for i := range 10 {
		if q.room() == 0 {
			t.Fatalf("full after %d appends", i)
		}
		q.append(fmt.Sprint(i), msg(fmt.Sprint(i)))
	}
	if q.room() != 0 {
		t.Fatalf("room %d after 10 appends, want 0", q.room())
	}
	if m := q.take("3"); m == nil || string(m.Body) != "3" {
		t.Fatalf("take(3) = %v", m)
	}
	if q.room() != 1 {
		t.Fatalf("room %d after an ack, want 1", q.room())
	}
	if q.take("3") != nil || q.take("nope") != nil {
		t.Fatal("take of a settled or unknown tag returned a message")
	}
	var got []string
	q.drain(func(tag string, m *transport.Message) { got = append(got, tag) })
	want := []string{"9", "8", "7", "6", "5", "4", "2", "1", "0"}
	if !slices.Equal(got, want) {
		t.Fatalf("restore order %v, want %v (LIFO)", got, want)
	}
	if q.room() != 10 || q.live != 0 {
		t.Fatalf("after drain: room %d live %d", q.room(), q.live)
	}
	q.prefetch = 0
	if q.room() != Unlimited {
		t.Fatalf("unlimited room = %d", q.room())
	}
}

func TestQoSRedeliveredTagReplaces(t *testing.T) {
	var q qos
	q.init()
	q.append("t", msg("first"))
	q.append("t", msg("second"))
	if q.live != 1 {
		t.Fatalf("live %d, want 1", q.live)
	}
	if m := q.take("t"); string(m.Body) != "second" {
		t.Fatalf("got %q", m.Body)
	}
	if q.live != 0 || len(q.order) != 0 {
		t.Fatalf("live %d, order %d after the last take", q.live, len(q.order))
	}
}

// Random appends and takes, checked against a plain model, exercise the
// trimming and the compaction.
func TestQoSModel(t *testing.T) {
	var q qos
	q.init()
	r := rand.New(rand.NewPCG(1, 2))
	var model []string // live tags in delivery order
	next := 0
	for step := range 20000 {
		if len(model) == 0 || r.IntN(3) > 0 && len(model) < 500 {
			tag := fmt.Sprint(next)
			next++
			q.append(tag, msg(tag))
			model = append(model, tag)
		} else {
			i := r.IntN(len(model))
			if r.IntN(2) == 0 {
				i = 0 // acks mostly in order
			}
			tag := model[i]
			model = slices.Delete(model, i, i+1)
			if m := q.take(tag); m == nil || string(m.Body) != tag {
				t.Fatalf("step %d: take(%s) = %v", step, tag, m)
			}
		}
		if q.live != len(model) {
			t.Fatalf("step %d: live %d, model %d", step, q.live, len(model))
		}
		if len(q.order) > 4*len(model)+64+len(model) {
			t.Fatalf("step %d: %d slots for %d live deliveries", step, len(q.order), len(model))
		}
	}
	var got []string
	q.drain(func(tag string, _ *transport.Message) { got = append(got, tag) })
	slices.Reverse(model)
	if !slices.Equal(got, model) {
		t.Fatalf("drain order differs from the model")
	}
}
