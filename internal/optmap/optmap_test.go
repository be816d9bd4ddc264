package optmap

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func TestTypedValuesAndStrings(t *testing.T) {
	r := New("redis", map[string]any{
		"visibility_timeout": "3.5", "ack_emulation": "no", "max_connections": 7,
		"socket_timeout": 2 * time.Second, "priority_steps": "[0, 5]", "client_name": "x",
		"sentinel_kwargs": `{"password": "p"}`, "queue_order_strategy": "PRIORITY",
	})
	var (
		vis, sock time.Duration
		ack       = true
		maxConns  int
		steps     []int
		name      string
		order     string
	)
	r.Seconds("visibility_timeout", &vis)
	r.Bool("ack_emulation", &ack)
	r.Int("max_connections", &maxConns)
	r.Seconds("socket_timeout", &sock)
	r.Ints("priority_steps", &steps)
	r.String("client_name", &name)
	m, ok := r.Map("sentinel_kwargs")
	r.OneOf("queue_order_strategy", &order, "round_robin", "sorted", "priority")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if vis != 3500*time.Millisecond || ack || maxConns != 7 || sock != 2*time.Second ||
		!reflect.DeepEqual(steps, []int{0, 5}) || name != "x" || !ok || m["password"] != "p" || order != "priority" {
		t.Fatalf("got vis=%v ack=%v max=%d sock=%v steps=%v name=%q map=%v order=%q", vis, ack, maxConns, sock, steps, name, m, order)
	}
}

func TestAbsentKeepsDefault(t *testing.T) {
	r := New("amqp", map[string]any{"heartbeat": nil})
	d := 7 * time.Second
	if r.Seconds("heartbeat", &d) || d != 7*time.Second {
		t.Fatalf("nil value changed the default: %v", d)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownKeyNamesItAndListsValid(t *testing.T) {
	r := New("redis", map[string]any{"visibilty_timeout": 3, "zzz": 1})
	var d time.Duration
	r.Seconds("visibility_timeout", &d)
	r.Known("global_keyprefix")
	err := r.Err()
	var oe *transport.OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an OptionError", err)
	}
	if oe.Key != "visibilty_timeout" || !reflect.DeepEqual(oe.Unknown, []string{"visibilty_timeout", "zzz"}) ||
		!reflect.DeepEqual(oe.Valid, []string{"global_keyprefix", "visibility_timeout"}) {
		t.Fatalf("OptionError = %+v", oe)
	}
	for _, want := range []string{"visibilty_timeout", "zzz", "valid options: global_keyprefix, visibility_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

func TestBadValuesAreErrors(t *testing.T) {
	for _, c := range []struct {
		key string
		val any
		get func(r *Reader)
	}{
		{"a", "maybe", func(r *Reader) { var b bool; r.Bool("a", &b) }},
		{"a", "1.5", func(r *Reader) { var n int; r.Int("a", &n) }},
		{"a", "NaN", func(r *Reader) { var f float64; r.Float("a", &f) }},
		{"a", "1e300", func(r *Reader) { var d time.Duration; r.Seconds("a", &d) }},
		{"a", []string{"x"}, func(r *Reader) { var s string; r.String("a", &s) }},
		{"a", "[1, x]", func(r *Reader) { var s []int; r.Ints("a", &s) }},
		{"a", "[1]", func(r *Reader) { r.Map("a") }},
		{"a", "fifo", func(r *Reader) { var s string; r.OneOf("a", &s, "lifo") }},
	} {
		r := New("t", map[string]any{c.key: c.val})
		c.get(r)
		var oe *transport.OptionError
		if err := r.Err(); !errors.As(err, &oe) || oe.Key != c.key || oe.Reason == "unknown option" {
			t.Errorf("%v: err = %v, want a value OptionError for %q", c.val, err, c.key)
		}
	}
}
