package filesystem

import (
	"testing"

	"github.com/kombu-go/kombu/transport"
)

// benchFolders returns the folders of a connection over a fresh folder.
func benchFolders(b *testing.B) *folders {
	b.Helper()
	dir := testDir(b)
	o := DefaultOptions()
	o.DataFolderIn, o.DataFolderOut = dir, dir
	if err := o.check(); err != nil {
		b.Fatal(err)
	}
	f, err := openFolders(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.release() })
	return f
}

func benchEnvelope(b *testing.B) []byte {
	b.Helper()
	data, err := encode(&transport.Message{Body: make([]byte, 64), ContentType: "application/json",
		DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "6d1578bc-2a78-4ed4-a22b-e0dad10a14d5", RoutingKey: "q"}})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkPut is one publish: a temporary file written and renamed.
func BenchmarkPut(b *testing.B) {
	f, data := benchFolders(b), benchEnvelope(b)
	for b.Loop() {
		if err := f.put("q", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimOne is what a read on the hub would cost per message,
// with the page cache warm: the stat, rename, open, read and close of one
// claim (listing excluded: one listing serves many claims), then the
// delete of its ack.
func BenchmarkClaimOne(b *testing.B) {
	f, data := benchFolders(b), benchEnvelope(b)
	for b.Loop() {
		b.StopTimer()
		if err := f.put("q", data); err != nil {
			b.Fatal(err)
		}
		lists, err := scan(f.in, nil)
		if err != nil || len(lists["q"]) != 1 {
			b.Fatalf("scan: %v %v", lists, err)
		}
		e := lists["q"][0]
		b.StartTimer()
		c, st, err := f.claimOne("q", e, e.mod)
		if err != nil || st != claimOK {
			b.Fatalf("claim: %v %v", st, err)
		}
		if err := f.finish(c.name); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan is one listing of a folder of 1,000 message files.
func BenchmarkScan(b *testing.B) {
	f, data := benchFolders(b), benchEnvelope(b)
	for range 1000 {
		if err := f.put("q", data); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := scan(f.in, nil); err != nil {
			b.Fatal(err)
		}
	}
}
