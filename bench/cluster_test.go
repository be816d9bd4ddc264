package bench

import (
	"maps"
	"slices"
	"testing"
)

// TestKeySlot checks keySlot against CLUSTER KEYSLOT of Redis 7.0.15
// (values read with redis-cli), hash tags included.
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "123456789": 12739, "somekey": 11058,
		"foo{hash_tag}": 2515, "{user1000}.following": 3443,
		"pre{}x": 4205, "{}{a}": 13650, "a{b}c{d}": 3300,
		"kombu-bench-0a1b2c3d-s-7": 5556, "": 0,
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

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
					if got := m.masterOf(keySlot(prefix + "{" + name + "}")); got != masters[i] {
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
