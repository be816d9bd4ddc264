package filesystem

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// QueueStat counts the files of one queue.
type QueueStat struct {
	Name string
	// Ready is the number of message files waiting in data_folder_in.
	Ready int
	// Unacked is the number of files claimed by connections of this
	// package (live ones, or dead ones not yet recovered); Kombu's
	// consumers keep theirs in memory only, so they are not counted.
	Unacked int
}

// Queues lists every queue that has files in data_folder_in or claimed
// ones, sorted by name: the folder is the only record of a queue (Kombu
// keeps no queue list). It reads the folders on the caller's goroutine.
func (t *Transport) Queues() ([]QueueStat, error) {
	lists, err := scan(t.o.DataFolderIn, nil)
	if err != nil {
		return nil, connErr("list queues", err)
	}
	stats := map[string]*QueueStat{}
	get := func(q string) *QueueStat {
		s := stats[q]
		if s == nil {
			s = &QueueStat{Name: q}
			stats[q] = s
		}
		return s
	}
	for q, l := range lists {
		get(q).Ready = len(l)
	}
	base := filepath.Join(t.o.DataFolderIn, ourDir)
	owners, _ := os.ReadDir(base) // no claim folder yet: no claims
	for _, o := range owners {
		if !o.IsDir() {
			continue
		}
		ents, _ := os.ReadDir(filepath.Join(base, o.Name()))
		for _, e := range ents {
			if f, ok := parseName(e.Name()); ok {
				get(f.queue).Unacked++
			}
		}
	}
	out := make([]QueueStat, 0, len(stats))
	for _, s := range stats {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b QueueStat) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
