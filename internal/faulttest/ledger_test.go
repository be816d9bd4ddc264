package faulttest

import (
	"reflect"
	"strings"
	"testing"
)

func TestIDRoundTrip(t *testing.T) {
	for _, n := range []int{0, 7, 123456789} {
		id := FormatID(n)
		if len(id) != IDWidth {
			t.Errorf("FormatID(%d) = %q: %d characters, want %d", n, id, len(id), IDWidth)
		}
		if got, ok := ParseID(id); !ok || got != n {
			t.Errorf("ParseID(%q) = %d, %v; want %d", id, got, ok, n)
		}
	}
	for _, bad := range []string{"", "12", "00000001x", "-00000001", "+00000001", "0000000001"} {
		if _, ok := ParseID(bad); ok {
			t.Errorf("ParseID(%q) accepted a malformed id", bad)
		}
	}
}

func TestTally(t *testing.T) {
	l := NewLedger()
	first := l.Reserve(6) // 0..5
	l.Record(first, 4, Confirmed)
	l.Record(4, 2, Uncertain)
	l.Reserve(1) // 6: never sent

	lines := []string{
		FormatID(0), FormatID(1), FormatID(1), FormatID(1), // 1 delivered three times
		FormatID(3),
		FormatID(4),   // an uncertain publish that arrived
		FormatID(6),   // never sent: foreign
		"garbage",     // foreign
		FormatID(999), // never reserved: foreign
	}
	file := strings.Join(lines, "\n") + "\n" + FormatID(0)[:4] // a torn last line: foreign
	got := l.Tally([]byte(file))
	want := Tally{
		Published: 4, Uncertain: 2, Delivered: 6, Distinct: 4, Lost: 1, Duplicated: 2, Foreign: 4,
		LostIDs: []int{2}, DupIDs: []int{1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Tally:\n got %+v\nwant %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "published 4 / delivered 6 / lost 1 / duplicated 2") {
		t.Errorf("String() = %q: not the report line", s)
	}
}

func TestTallyEmpty(t *testing.T) {
	l := NewLedger()
	l.Record(l.Reserve(3), 3, Confirmed)
	got := l.Tally(nil)
	if got.Lost != 3 || !reflect.DeepEqual(got.LostIDs, []int{0, 1, 2}) || got.Delivered != 0 {
		t.Errorf("Tally of an empty file: %+v, want all 3 lost", got)
	}
}
