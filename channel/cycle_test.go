package channel_test

import (
	"slices"
	"testing"

	"github.com/kombu-go/kombu/channel"
)

// Kombu test_round_robin_cycle and friends.
func TestCycles(t *testing.T) {
	rr, err := channel.NewCycle(channel.RoundRobin)
	if err != nil {
		t.Fatal(err)
	}
	rr.Update([]string{"A", "B", "C"})
	rr.Rotate("B")
	if got := rr.Consume(3); !slices.Equal(got, []string{"A", "C", "B"}) {
		t.Errorf("after rotate(B): %v", got)
	}
	rr.Rotate("A")
	if got := rr.Consume(3); !slices.Equal(got, []string{"C", "B", "A"}) {
		t.Errorf("after rotate(A): %v", got)
	}
	rr.Rotate("missing")
	if got := rr.Consume(2); !slices.Equal(got, []string{"C", "B"}) {
		t.Errorf("consume(2): %v", got)
	}

	pr, _ := channel.NewCycle(channel.PriorityOrder)
	pr.Update([]string{"B", "A", "C"})
	pr.Rotate("B")
	if got := pr.Consume(3); !slices.Equal(got, []string{"B", "A", "C"}) {
		t.Errorf("priority rotates: %v", got)
	}

	so, _ := channel.NewCycle(channel.Sorted)
	so.Update([]string{"c", "a", "b"})
	so.Rotate("a")
	if got := so.Consume(3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("sorted: %v", got)
	}
	if got := so.Consume(2); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("sorted consume(2) sorts the first two: %v", got)
	}

	if c, err := channel.NewCycle(""); err != nil || c == nil {
		t.Errorf("default strategy: %v", err)
	}
	if _, err := channel.NewCycle("random"); err == nil {
		t.Error("unknown strategy accepted")
	}
}

// Kombu test_FairCycle.test_cycle_breaks.
func TestFairCycleBreaks(t *testing.T) {
	var f channel.FairCycle
	f.Update([]string{"a", "b", "c", "d", "e"})
	var got []string
	for range 10 {
		r, ok := f.Next(func(r string) bool { return r != "c" })
		if !ok {
			t.Fatal("no resource served")
		}
		got = append(got, r)
	}
	want := []string{"a", "b", "d", "e", "a", "b", "d", "e", "a", "b"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	tried := 0
	if _, ok := f.Next(func(string) bool { tried++; return false }); ok || tried != 5 {
		t.Errorf("all failing: ok=%v after %d tries, want false after 5", ok, tried)
	}
	var empty channel.FairCycle
	if _, ok := empty.Next(func(string) bool { return true }); ok {
		t.Error("empty cycle served")
	}
}
