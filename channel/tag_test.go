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

func BenchmarkNewDeliveryTag(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		channel.NewDeliveryTag()
	}
}
