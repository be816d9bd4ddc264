package channel_test

import (
	"regexp"
	"sync"
	"testing"

	"github.com/kombu-go/kombu/channel"
)

var uuid4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewDeliveryTag(t *testing.T) {
	seen := make(map[string]bool)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 { // several refills of the batch
				tag := channel.NewDeliveryTag()
				if !uuid4.MatchString(tag) {
					t.Errorf("%q is not a uuid4", tag)
					return
				}
				mu.Lock()
				if seen[tag] {
					t.Errorf("duplicate tag %q", tag)
				}
				seen[tag] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TagBlock's tags are uuid4s, all different, across refills.
func TestTagBlock(t *testing.T) {
	seen := make(map[string]bool)
	var tb channel.TagBlock
	for range 1000 {
		tag := tb.Next()
		if !uuid4.MatchString(tag) {
			t.Fatalf("%q is not a uuid4", tag)
		}
		if seen[tag] {
			t.Fatalf("duplicate tag %q", tag)
		}
		seen[tag] = true
	}
}

func BenchmarkTagBlock(b *testing.B) {
	b.ReportAllocs()
	var tb channel.TagBlock
	for b.Loop() {
		tb.Next()
	}
}

func BenchmarkNewDeliveryTag(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		channel.NewDeliveryTag()
	}
}
