package memory_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// Many publishers, several channels with prefetch, acks/requeues from worker
// goroutines, channels closed while messages are in flight, consumers
// cancelled and re-added. Every message must be acked at least once, nothing
// may remain, and no channel may hold more than prefetch unsettled.
func TestStressSettleCloseCancel(t *testing.T) {
	h := runHub(t)
	conn := dial(t, h, "t-review-stress", nil)
	const N = 20000
	const prefetch = 5
	var mu sync.Mutex
	acked := map[string]int{}
	var over atomic.Int64

	pubCh, _ := conn.Channel(ctx)
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < N/4; i++ {
				pub(t, pubCh, "", "sq", fmt.Sprintf("%d-%d", p, i))
			}
		}(p)
	}

	stop := make(chan struct{})
	var cwg sync.WaitGroup
	for w := 0; w < 3; w++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch, err := conn.Channel(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				must(t, ch.Qos(ctx, prefetch))
				var inflight atomic.Int64
				jobs := make(chan *transport.Message, 1000)
				var jwg sync.WaitGroup
				for k := 0; k < 3; k++ {
					jwg.Add(1)
					go func() {
						defer jwg.Done()
						for m := range jobs {
							if rand.IntN(10) == 0 {
								inflight.Add(-1)
								ch.Reject(m.DeliveryInfo.DeliveryTag, true)
								continue
							}
							inflight.Add(-1)
							if err := ch.Ack(m.DeliveryInfo.DeliveryTag); err == nil {
								mu.Lock()
								acked[string(m.Body)]++
								mu.Unlock()
							}
						}
					}()
				}
				tag, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "sq"}, func(m *transport.Message) {
					if inflight.Add(1) > prefetch {
						over.Add(1)
					}
					jobs <- m
				})
				must(t, err)
				time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				if rand.IntN(2) == 0 {
					must(t, ch.Cancel(ctx, tag))
					time.Sleep(time.Millisecond)
				}
				must(t, ch.Close())
				close(jobs)
				jwg.Wait()
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n == N {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	cwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, c := range acked {
		if c > 1 {
			dups++
		}
	}
	left := 0
	for {
		if _, err := pubCh.Get(ctx, "sq", true); err != nil {
			break
		}
		left++
	}
	t.Logf("acked %d distinct of %d, %d acked more than once, %d left in queue, prefetch exceeded %d times", len(acked), N, dups, left, over.Load())
	if len(acked)+left < N {
		t.Errorf("lost %d messages", N-len(acked)-left)
	}
	if over.Load() > 0 {
		t.Errorf("more than prefetch in flight %d times", over.Load())
	}
	if dups > 0 {
		t.Errorf("%d messages acked twice", dups)
	}
}
