package redis

import (
	"context"
	"errors"
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// TestCloseFromCallback: the connection's and the channel's Close called
// from a hub callback return hub.ErrInCallback at once and leave both open
// (the connection's Close used to wait for the hub for ever); the cleanup
// then closes them from the test goroutine.
func TestCloseFromCallback(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	var connErr, chErr error
	if err := e.h.Call(context.Background(), func() { connErr, chErr = e.conn.Close(), ch.Close() }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(connErr, hub.ErrInCallback) || !errors.Is(chErr, hub.ErrInCallback) {
		t.Fatalf("from a callback: conn.Close = %v, ch.Close = %v; want ErrInCallback", connErr, chErr)
	}
	if e.conn.Err() != nil {
		t.Fatalf("the connection closed: %v", e.conn.Err())
	}
	if _, err := ch.DeclareQueue(ctxT(t), transport.Queue{Name: uniq("owner")}); err != nil {
		t.Fatalf("the channel closed: %v", err)
	}
}
