package bench_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/kombu-go/kombu/bench"
)

func TestMain(m *testing.M) {
	// Every hub these tests create checks that its hub-only methods are
	// called by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}

// TestRingRuns checks every implementation passes the token the asked
// number of times and that the hub needs no goroutine per descriptor.
func TestRingRuns(t *testing.T) {
	for _, impl := range []string{bench.ImplRawEpoll, bench.ImplHub, "hub-blocking", "hub-gosched", "hub-netpoll", bench.ImplGoroutines} {
		res, err := bench.RunRing(impl, 50, 2000)
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		if res.NsPerEvent <= 0 {
			t.Fatalf("%s: ns/event %v", impl, res.NsPerEvent)
		}
		if impl == bench.ImplGoroutines && res.Goroutines < 50 {
			t.Fatalf("goroutine ring ran with %d goroutines, want one per fd", res.Goroutines)
		}
		if impl == bench.ImplHub && res.Goroutines >= 50 {
			t.Fatalf("hub ring ran with %d goroutines", res.Goroutines)
		}
	}
	if _, err := bench.RunRing("nope", 1, 1); err == nil {
		t.Fatal("unknown implementation accepted")
	}
}

func TestWakeupAndTimers(t *testing.T) {
	res, err := bench.Wakeup(20, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 5 {
		t.Fatalf("got %d mechanisms: %v", len(res), res)
	}
	tr := bench.Timers(1000, 100)
	if tr.HeapScheduleFire <= 0 || tr.AfterFuncScheduleFire <= 0 {
		t.Fatalf("timers: %+v", tr)
	}
}

func BenchmarkRing(b *testing.B) {
	for _, n := range []int{1, 1000} {
		for _, impl := range []string{bench.ImplRawEpoll, bench.ImplHub, bench.ImplGoroutines} {
			b.Run(fmt.Sprintf("%s/fds=%d", impl, n), func(b *testing.B) {
				res, err := bench.RunRing(impl, n, b.N)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.NsPerEvent, "ns/event")
				b.ReportMetric(res.AllocsPerEvent, "allocs/event")
			})
		}
	}
}

func BenchmarkWakeup(b *testing.B) {
	res, err := bench.Wakeup(max(b.N, 100), 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		b.ReportMetric(r.Ns, r.Mode+"-ns")
	}
}
