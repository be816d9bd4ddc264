package messaging_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func TestNewEntitiesDefaults(t *testing.T) {
	ex := messaging.NewExchange("media", "")
	if ex.Type != messaging.Direct || !ex.Durable || ex.AutoDelete {
		t.Errorf("NewExchange = %+v", ex)
	}
	q := messaging.NewQueue("video", ex, "video")
	if !q.Durable || q.Exclusive || q.AutoDelete || q.Exchange.Name != "media" || q.RoutingKey != "video" {
		t.Errorf("NewQueue = %+v", q)
	}
	if ex.String() != "Exchange media(direct)" {
		t.Errorf("String = %q", ex.String())
	}
}

func TestQueueArguments(t *testing.T) {
	q := messaging.Queue{Name: "q", Expires: 1500 * time.Millisecond, MessageTTL: 10 * time.Second,
		MaxLength: 5, MaxLengthBytes: 1024, MaxPriority: 9, QueueArguments: map[string]any{"x-dead-letter-exchange": "dlx"}}
	want := map[string]any{"x-expires": int64(1500), "x-message-ttl": int64(10000), "x-max-length": int64(5),
		"x-max-length-bytes": int64(1024), "x-max-priority": int64(9), "x-dead-letter-exchange": "dlx"}
	if got := q.Arguments(); !reflect.DeepEqual(got, want) {
		t.Errorf("Arguments = %v, want %v", got, want)
	}
	if len(q.QueueArguments) != 1 {
		t.Error("Arguments changed QueueArguments")
	}
	if got := (messaging.Queue{Name: "q"}).Arguments(); got != nil {
		t.Errorf("no arguments: %v", got)
	}
}

// Kombu test case 74: can_cache_declaration, exclusive implies
// auto_delete, hash keys E|name and Q|name.
func TestCanCacheDeclaration(t *testing.T) {
	if !messaging.NewExchange("e", "").CanCacheDeclaration() {
		t.Error("durable exchange not cacheable")
	}
	if (messaging.Exchange{Name: "e", AutoDelete: true}).CanCacheDeclaration() {
		t.Error("auto-delete exchange cacheable")
	}
	if !(messaging.Queue{Name: "q"}).CanCacheDeclaration() {
		t.Error("plain queue not cacheable")
	}
	for _, q := range []messaging.Queue{
		{Name: "q", AutoDelete: true},
		{Name: "q", Exclusive: true},
		{Name: "q", Expires: time.Second},
		{Name: "q", QueueArguments: map[string]any{"x-expires": 1000}},
	} {
		if q.CanCacheDeclaration() {
			t.Errorf("%+v cacheable", q)
		}
	}
	d := (messaging.Queue{Name: "q", Exclusive: true}).Declaration()
	if !d.AutoDelete || !d.Exclusive {
		t.Errorf("exclusive does not imply auto-delete: %+v", d)
	}
	if messaging.CacheKey(messaging.NewExchange("x", "")) != "E|x" || messaging.CacheKey(messaging.Queue{Name: "x"}) != "Q|x" {
		t.Error("cache keys")
	}
}

func TestQueueDeclareOrder(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	ctx := context.Background()
	ch, err := c.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q := messaging.NewQueue("video", messaging.NewExchange("media", ""), "video")
	info, err := q.Declare(ctx, ch)
	if err != nil || info.Name != "video" {
		t.Fatalf("Declare = %+v, %v", info, err)
	}
	multi := messaging.Queue{Name: "m", Exchange: messaging.NewExchange("ignored", ""), Bindings: []messaging.Binding{
		{Exchange: messaging.NewExchange("e1", messaging.Topic), RoutingKey: "a.#"},
		{Exchange: messaging.NewExchange("e2", messaging.Fanout)},
	}}
	if _, err := multi.Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	anon := messaging.Queue{}
	info, err = anon.Declare(ctx, ch)
	if err != nil || info.Name != "amq.gen-1" {
		t.Fatalf("anonymous Declare = %+v, %v", info, err)
	}
	// Default and amq. exchanges are never declared; NoDeclare skips all.
	if err := messaging.NewExchange("amq.topic", "").Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := (messaging.Queue{Name: "skip", NoDeclare: true}).Declare(ctx, ch); err != nil {
		t.Fatal(err)
	}
	want := []string{"exchange media", "queue video", "bind video media video",
		"queue m", "exchange e1", "bind m e1 a.#", "exchange e2", "bind m e2 ",
		"queue amq.gen-1"}
	if !reflect.DeepEqual(b.declared, want) {
		t.Errorf("declared\n%q\nwant\n%q", b.declared, want)
	}
}

// Kombu test case 76: maybe_declare caches cacheable entities, and the
// cache is cleared on reconnection.
func TestMaybeDeclare(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	ctx := context.Background()
	q := messaging.Queue{Name: "q"}
	for i, want := range []bool{true, false, false} {
		did, err := c.MaybeDeclare(ctx, nil, q)
		if err != nil || did != want {
			t.Fatalf("call %d: %v, %v; want %v", i, did, err, want)
		}
	}
	auto := messaging.Queue{Name: "tmp", AutoDelete: true}
	for i := 0; i < 2; i++ {
		if did, err := c.MaybeDeclare(ctx, nil, auto); err != nil || !did {
			t.Fatalf("non-cacheable call %d: %v, %v", i, did, err)
		}
	}
	if got := messaging.DeclaredKeys(c); !reflect.DeepEqual(got, []string{"Q|q"}) {
		t.Errorf("cache %v", got)
	}
	// A new connection forgets the cache.
	b.lastConn().kill()
	if did, err := c.MaybeDeclare(ctx, nil, q); err != nil || !did {
		t.Fatalf("after reconnection: %v, %v", did, err)
	}
	n := 0
	for _, d := range b.declared {
		if d == "queue q" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("queue q declared %d times, want 2 (%q)", n, b.declared)
	}
	c.Close()
	if len(messaging.DeclaredKeys(c)) != 0 {
		t.Error("Close kept the cache")
	}
}

func TestQueueOps(t *testing.T) {
	b := &fakeBroker{}
	c, _ := newFake(t, "fake://a", b, nil)
	ctx := context.Background()
	ch, _ := c.DefaultChannel(ctx)
	q := messaging.NewQueue("q", messaging.NewExchange("e", ""), "k")
	if n, err := q.Purge(ctx, ch); err != nil || n != 3 {
		t.Errorf("Purge = %d, %v", n, err)
	}
	if err := q.Unbind(ctx, ch); err != nil {
		t.Error(err)
	}
	if _, err := q.Delete(ctx, ch, messaging.DeleteOptions{IfEmpty: true}); err != nil {
		t.Error(err)
	}
	if err := q.Exchange.Delete(ctx, ch, messaging.DeleteOptions{}); err != nil {
		t.Error(err)
	}
	if !slices.Equal(b.declared, []string{"purge q", "unbind q", "delete queue q", "delete exchange e"}) {
		t.Errorf("calls %q", b.declared)
	}
}
