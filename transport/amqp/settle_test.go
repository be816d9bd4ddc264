package amqp

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestSettlerContiguous(t *testing.T) {
	var s settler
	up, singles, dups := s.plan([]uint64{3, 1, 2, 2})
	if up != 3 || len(singles) != 0 || dups != 0 {
		t.Fatalf("1..3: up=%d singles=%v dups=%d", up, singles, dups)
	}
	up, singles, _ = s.plan([]uint64{4})
	if up != 0 || !reflect.DeepEqual(singles, []uint64{4}) {
		t.Fatalf("single 4: up=%d singles=%v", up, singles)
	}
	if s.base != 4 {
		t.Fatalf("base = %d, want 4", s.base)
	}
}

func TestSettlerGap(t *testing.T) {
	var s settler
	// 2 is still held by the application: 1 may go alone, 3 and 4 must not
	// be covered by a multiple ack (it would settle 2).
	up, singles, _ := s.plan([]uint64{1, 3, 4})
	if up != 0 || !reflect.DeepEqual(singles, []uint64{1, 3, 4}) {
		t.Fatalf("gap: up=%d singles=%v", up, singles)
	}
	// Once 2 comes, 5 and 6 can ride one multiple ack over 2..6.
	up, singles, _ = s.plan([]uint64{6, 2, 5})
	if up != 6 || len(singles) != 0 || s.base != 6 {
		t.Fatalf("after the gap: up=%d singles=%v base=%d", up, singles, s.base)
	}
}

func TestSettlerRejectAndDuplicates(t *testing.T) {
	var s settler
	if !s.reject(2) || s.reject(2) {
		t.Fatal("a second reject of 2 must be refused")
	}
	up, singles, dups := s.plan([]uint64{1, 2, 3})
	if dups != 1 || up != 3 || len(singles) != 0 {
		t.Fatalf("ack over a rejected tag: up=%d singles=%v dups=%d", up, singles, dups)
	}
	if _, _, dups := s.plan([]uint64{3}); dups != 1 {
		t.Fatal("double ack not dropped")
	}
}

func TestSettlerNoMulti(t *testing.T) {
	var s settler
	s.disableMulti()
	up, singles, _ := s.plan([]uint64{2, 1, 3})
	if up != 0 || !reflect.DeepEqual(singles, []uint64{1, 2, 3}) {
		t.Fatalf("noMulti: up=%d singles=%v", up, singles)
	}
}

func TestSettlerBound(t *testing.T) {
	var s settler
	// Tag 1 is never settled; everything after it piles up, then the
	// settler gives up batching instead of growing without bound.
	for tag := uint64(2); tag < maxSettled+10; tag++ {
		s.plan([]uint64{tag})
	}
	if !s.noMulti || s.done != nil {
		t.Fatalf("noMulti=%v len(done)=%d", s.noMulti, len(s.done))
	}
}

// checkSettler replays a random interleaving of deliveries and settlements
// against a model of the broker's unacked set: no ack may settle a tag the
// application did not settle, none may name a tag the broker no longer
// holds, and every settled tag must end up settled.
func checkSettler(t *testing.T, seed uint64, n int) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var s settler
	unacked := map[uint64]bool{} // broker side
	var held []uint64            // delivered, not yet settled by the app
	next := uint64(1)
	settledByApp := map[uint64]bool{}
	for step := 0; step < n; step++ {
		switch r.IntN(3) {
		case 0: // the broker delivers a few
			for k := r.IntN(4); k > 0; k-- {
				unacked[next] = true
				held = append(held, next)
				next++
			}
		case 1: // the app rejects one
			if len(held) == 0 {
				continue
			}
			i := r.IntN(len(held))
			tag := held[i]
			held = append(held[:i], held[i+1:]...)
			settledByApp[tag] = true
			if s.reject(tag) {
				if !unacked[tag] {
					t.Fatalf("seed %d: reject of %d which the broker does not hold", seed, tag)
				}
				delete(unacked, tag)
			}
		default: // the app acks a random subset (possibly with a repeat)
			var batch []uint64
			for k := r.IntN(5); k > 0 && len(held) > 0; k-- {
				i := r.IntN(len(held))
				batch = append(batch, held[i])
				settledByApp[held[i]] = true
				held = append(held[:i], held[i+1:]...)
			}
			if len(batch) > 0 && r.IntN(4) == 0 {
				batch = append(batch, batch[0])
			}
			up, singles, _ := s.plan(batch)
			if up > 0 {
				if !unacked[up] {
					t.Fatalf("seed %d: multiple ack names %d which the broker does not hold", seed, up)
				}
				for tag := range unacked {
					if tag <= up {
						if !settledByApp[tag] {
							t.Fatalf("seed %d: multiple ack up to %d settles %d, still held by the app", seed, up, tag)
						}
						delete(unacked, tag)
					}
				}
			}
			for _, tag := range singles {
				if !unacked[tag] {
					t.Fatalf("seed %d: single ack of %d which the broker does not hold", seed, tag)
				}
				delete(unacked, tag)
			}
		}
	}
	for tag := range unacked {
		if settledByApp[tag] {
			t.Fatalf("seed %d: %d settled by the app but never sent", seed, tag)
		}
	}
}

func TestSettlerModel(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		checkSettler(t, seed, 400)
	}
}

func FuzzSettler(f *testing.F) {
	f.Add(uint64(1), uint16(100))
	f.Add(uint64(42), uint16(1000))
	f.Fuzz(func(t *testing.T, seed uint64, n uint16) {
		checkSettler(t, seed, int(n))
	})
}
