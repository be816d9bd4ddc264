package memory_test

import (
	"errors"
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// TestCloseFromCallback: the connection's and the channel's Close called
// from a hub callback return hub.ErrInCallback and leave both open (the
// connection used to mark itself closed and leave its channels half
// closed); from the test goroutine they close as usual.
func TestCloseFromCallback(t *testing.T) {
	h := runHub(t)
	conn := dial(t, h, "owner-close", nil)
	ch, err := conn.Channel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var connErr, chErr error
	if err := h.Call(ctx, func() { connErr, chErr = conn.Close(), ch.Close() }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(connErr, hub.ErrInCallback) || !errors.Is(chErr, hub.ErrInCallback) {
		t.Fatalf("from a callback: conn.Close = %v, ch.Close = %v; want ErrInCallback", connErr, chErr)
	}
	if conn.Err() != nil {
		t.Fatalf("the connection closed: %v", conn.Err())
	}
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: "owner-close"}); err != nil {
		t.Fatalf("the channel closed: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: "owner-close"}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("the connection's Close left its channel open: %v", err)
	}
}
