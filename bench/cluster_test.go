package bench

import (
	"maps"
	"slices"
	"testing"

	"github.com/kombu-go/kombu/internal/hashslot"
)

// TestPickQueues picks queue names on a made-up slot map of three unequal
// masters: spread puts k/3 queues on each (one more on the first k%3), one
// puts all on the master of slot 0, and every name's slot is its master's.
func TestPickQueues(t *testing.T) {
	m := slotMap{
		ranges:  []slotSpan{{0, 999, "a:1"}, {1000, 1999, "b:2"}, {2000, 16383, "c:3"}, {16384, 16384, "x:9"}},
		masters: []string{"a:1", "b:2", "c:3"},
	}
	for _, prefix := range []string{"", "app."} {
		ct := clusterTarget{prefix: prefix}
		for k, wantSpread := range map[int]map[string]int{
			7: {"a:1": 3, "b:2": 2, "c:3": 2},
			2: {"a:1": 1, "b:2": 1},
		} {
			for _, spread := range []bool{true, false} {
				names, masters, err := ct.pickQueues(m, "q", k, spread)
				if err != nil {
					t.Fatal(err)
				}
				if len(names) != k || len(masters) != k {
					t.Fatalf("k=%d: %d names, %d masters", k, len(names), len(masters))
				}
				count := map[string]int{}
				for i, name := range names {
					if got := m.masterOf(hashslot.Slot(prefix + "{" + name + "}")); got != masters[i] {
						t.Errorf("%s%s is on %s, picked as %s", prefix, name, got, masters[i])
					}
					count[masters[i]]++
				}
				want := wantSpread
				if !spread {
					want = map[string]int{"a:1": k}
				}
				if !maps.Equal(count, want) {
					t.Errorf("prefix %q, k=%d, spread %v: queues per master %v, want %v", prefix, k, spread, count, want)
				}
				if len(slices.Compact(slices.Sorted(slices.Values(names)))) != k {
					t.Errorf("duplicate names %v", names)
				}
			}
		}
	}
	if _, _, err := (clusterTarget{}).pickQueues(slotMap{}, "q", 3, true); err == nil {
		t.Error("no masters: no error")
	}
	// A master that serves no slot cannot be given queues.
	m.masters = append(m.masters, "y:0")
	if _, _, err := (clusterTarget{}).pickQueues(m, "q", 4, true); err == nil {
		t.Error("a master without slots got a queue")
	}
}
