package filesystem

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// A file that is not a Kombu envelope is delivered with Err set and its
// bytes as the body, never dropped; rejecting it deletes it.
func TestMalformedFileDelivered(t *testing.T) {
	dir := testDir(t)
	name := makeName(monotonicMillis(), "q")
	if err := os.WriteFile(filepath.Join(dir, name), []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := runHub(t)
	c := dial(t, h, dir, dir, nil)
	ch := mustChannel(t, c)
	m := collect(t, ch, "q", false)(1)[0]
	if !errors.Is(m.Err, transport.ErrBadEnvelope) || string(m.Body) != "not json" {
		t.Fatalf("err %v body %q", m.Err, m.Body)
	}
	ch.Reject(m.DeliveryInfo.DeliveryTag, false)
	waitNoFiles(t, dir)
}

// An empty file (Kombu's _put has created it and not flushed it yet) is
// left to its writer and taken once it is filled.
func TestEmptyFileWaitsForItsWriter(t *testing.T) {
	dir := testDir(t)
	h := runHub(t)
	c := dial(t, h, dir, dir, nil)
	ch := mustChannel(t, c)
	wait := collect(t, ch, "q", true)
	path := filepath.Join(dir, makeName(monotonicMillis(), "q"))
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // several looks at the empty file
	data, err := encode(&transport.Message{Body: []byte("late"), ContentType: "text/plain",
		DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "t1", RoutingKey: "q"}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("the empty file was taken: %v", err)
	}
	f.Write(data)
	f.Close()
	if m := wait(1)[0]; m.Err != nil || string(m.Body) != "late" {
		t.Fatalf("got %q err %v", m.Body, m.Err)
	}
}

// store_processed: an acknowledged message's file is moved to
// processed_folder under its own name.
func TestStoreProcessed(t *testing.T) {
	dir, processed := testDir(t), testDir(t)
	h := runHub(t)
	c := dial(t, h, dir, dir, map[string]any{"store_processed": true, "processed_folder": processed})
	ch := mustChannel(t, c)
	publishIDs(t, ch, 0, 3)
	collect(t, ch, killQueue, true)(3)
	deadline := time.Now().Add(5 * time.Second)
	for len(msgFiles(t, processed)) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(msgFiles(t, processed)); n != 3 {
		t.Errorf("%d files in processed_folder, want 3", n)
	}
	waitNoFiles(t, dir)
}

// Dial fails clearly when a folder is missing (Kombu does not create
// them).
func TestDialMissingFolder(t *testing.T) {
	h := runHub(t)
	tr := newTransport(t, filepath.Join(testDir(t), "nope"), testDir(t), nil)
	_, err := tr.Dial(context.Background(), h)
	if err == nil || !transport.IsConnectionError(err) {
		t.Fatalf("dial: %v", err)
	}
}

// A connection's claims are safe while it lives (its flock is held), even
// from a recovery pass in the same process; once it is gone without
// settling (restore_on_close off), the next connection's Dial gives them
// back, marked redelivered, at the front of their queue.
func TestRecoverClaimsOfClosedConnection(t *testing.T) {
	dir := testDir(t)
	h := runHub(t)
	tr := newTransport(t, dir, dir, map[string]any{"restore_on_close": false})
	conn, err := tr.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	ch := mustChannel(t, conn.(*Conn))
	publishIDs(t, ch, 0, 5)
	ch.Qos(context.Background(), 2)
	collect(t, ch, killQueue, false)(2)
	// Alive: another connection's recovery leaves its claims alone.
	other := dial(t, h, dir, dir, nil)
	if n, err := other.f.recoverDead(); n != 0 || err != nil {
		t.Fatalf("recovered %d from a live connection (err %v)", n, err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := other.f.recoverDead(); n != 2 || err != nil {
		t.Fatalf("recovered %d, want 2 (err %v)", n, err)
	}
	got := collect(t, mustChannel(t, other), killQueue, true)(5)
	for i, m := range got {
		if string(m.Body) != string(rune('0'+i)) || m.DeliveryInfo.Redelivered != (i < 2) {
			t.Errorf("delivery %d: %q redelivered %v", i, m.Body, m.DeliveryInfo.Redelivered)
		}
	}
}

// A consumer's passes share one listing (listingTTL); a file that arrives
// meanwhile is not in it, and the passes must not stop before a fresh
// listing has seen it: they report more until one has.
func TestListingReuseSeesNewFiles(t *testing.T) {
	dir := testDir(t)
	o := DefaultOptions()
	o.DataFolderIn, o.DataFolderOut = dir, dir
	if err := o.check(); err != nil {
		t.Fatal(err)
	}
	f, err := openFolders(o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.release()
	for range 3 {
		if err := f.put("q", []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var l *listing
	for pass := 0; pass < 20; pass++ {
		var res claimResult
		res, l = f.claim([]string{"q"}, 1, l)
		if res.err != nil {
			t.Fatal(res.err)
		}
		for _, c := range res.got {
			got = append(got, string(c.data))
			f.finish(c.name)
		}
		if pass == 0 {
			if err := f.put("q", []byte("new")); err != nil { // after the listing
				t.Fatal(err)
			}
		}
		if !res.more {
			break
		}
	}
	if len(got) != 4 || got[3] != "new" {
		t.Errorf("passes took %q; want the 3 old files then the new one", got)
	}
}
