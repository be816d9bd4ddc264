package filesystem

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// TestFolderGoneAndBack: the folder disappears (renamed away) while a
// consumer watches it and comes back. Publishing meanwhile fails with a
// connection error (so messaging's ensure/retry applies); the consumer's
// watch is lost, it polls every polling_interval, sets the watch up again
// once the folder is back, and consumes what was published before and
// after. Nothing is lost.
func TestFolderGoneAndBack(t *testing.T) {
	dir := testDir(t)
	away := dir + ".away"
	h := runHub(t)
	c := dial(t, h, dir, dir, map[string]any{"polling_interval": 0.05})
	ch := mustChannel(t, c)
	waitWatching(t, c, true)
	wait := collect(t, ch, killQueue, true)
	publishIDs(t, ch, 0, 10)
	wait(10)

	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	err := ch.Publish(context.Background(), &transport.Message{Body: []byte("x")}, "", killQueue, transport.PublishOptions{})
	if err == nil || !transport.IsConnectionError(err) {
		t.Fatalf("publish into a missing folder: %v, want a connection error", err)
	}
	waitWatching(t, c, false)          // IN_MOVE_SELF: the watch is lost, polling
	time.Sleep(150 * time.Millisecond) // a few failed polls
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	publishIDs(t, ch, 10, 20)
	got := wait(10)
	for i, m := range got {
		if string(m.Body) != strconv.Itoa(10+i) {
			t.Errorf("after the outage, delivery %d is %q", i, m.Body)
		}
	}
	waitWatching(t, c, true)
}

// waitWatching waits until the connection's watch is (or is not) set up.
func waitWatching(t *testing.T, c *Conn, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var watching bool
		c.h.Call(context.Background(), func() { watching = c.watching })
		if watching == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watching is %v, want %v", watching, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
