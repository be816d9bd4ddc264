package filesystem

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Kombu's file layout (kombu/transport/filesystem.py, 5.2.4): a message of
// queue q is one file "<ms>_<uuid>.<q>.msg" in the folder, where ms is
// int(round(time.monotonic()*1000)) of the writer and the content is the
// JSON envelope. Consumers list the folder, sort the names and take the
// first whose name contains ".<q>.msg".

// msgSuffix ends every message file name.
const msgSuffix = ".msg"

// ourDir is the folder inside data_folder_in where this package keeps its
// claims (one sub-folder and one lock file per connection). Its name holds
// no ".msg", so Kombu's substring match never takes it for a message.
const ourDir = ".kombu-go"

// tmpPrefix starts the name of a message being written (then renamed to its
// final name). The name holds no ".msg" either.
const tmpPrefix = ".kombu-go-tmp-"

// fileName is one parsed message file name.
type fileName struct {
	name  string // the whole base name
	ms    int64  // the writer's monotonic milliseconds
	queue string
}

// parseName parses "<ms>_<uuid>.<queue>.msg". The queue is everything
// between the first dot and the ".msg" suffix: Kombu writes no dot before
// the queue (the timestamp is digits and the uuid is hex and dashes), so
// a queue name with dots is parsed whole. ok is false for anything else.
func parseName(name string) (f fileName, ok bool) {
	base, ok := strings.CutSuffix(name, msgSuffix)
	if !ok {
		return f, false
	}
	head, queue, ok := strings.Cut(base, ".")
	if !ok || queue == "" {
		return f, false
	}
	ts, id, ok := strings.Cut(head, "_")
	if !ok || id == "" || ts == "" {
		return f, false
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ms < 0 {
		return f, false
	}
	return fileName{name: name, ms: ms, queue: queue}, true
}

// makeName returns the file name of a new message of queue.
func makeName(ms int64, queue string) string {
	return strconv.FormatInt(ms, 10) + "_" + newFileID() + "." + queue + msgSuffix
}

// checkQueueName refuses queue names that cannot be part of a file name.
func checkQueueName(queue string) error {
	switch {
	case queue == "":
		return errors.New("filesystem: empty queue name")
	case strings.ContainsAny(queue, "/\x00"):
		return fmt.Errorf("filesystem: queue name %q cannot be part of a file name (it holds '/' or NUL)", queue)
	}
	return nil
}

// idSeq orders the ids of this process: Kombu sorts file names, so two
// messages written in the same millisecond are taken in the order of their
// uuids. Ours start with a counter (random start, 48 bits), so this
// process's messages keep their publish order within a millisecond; the
// rest of the id is random. The result has the shape of a uuid (version
// 8, "custom"); Kombu never parses it.
var idSeq atomic.Uint64

func init() {
	var b [8]byte
	if _, err := rand.Read(b[:]); err == nil {
		v := uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
		idSeq.Store(v >> 2) // room to count for ever without wrapping 48 bits
	}
}

func newFileID() string {
	var b [16]byte
	n := idSeq.Add(1)
	for i := 0; i < 6; i++ {
		b[i] = byte(n >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x80 // version 8
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// entry is a message file found by a scan.
type entry struct {
	fileName
	size int64
	mod  time.Time
}

// compareEntries orders files as consumers take them: by the writer's
// milliseconds as numbers, then by name. Kombu sorts the names as strings,
// which agrees except where the number of digits changes (9999999 sorts
// after 10000000 as a string); ours is the intended order.
func compareEntries(a, b entry) int {
	if c := cmp.Compare(a.ms, b.ms); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// scan lists dir and returns the message files of the wanted queues (all
// queues when want is nil), each list oldest first. Files that vanish
// during the scan are skipped.
func scan(dir string, want func(queue string) bool) (map[string][]entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem: list %s: %w", dir, err)
	}
	out := make(map[string][]entry)
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		f, ok := parseName(de.Name())
		if !ok || (want != nil && !want(f.queue)) {
			continue
		}
		out[f.queue] = append(out[f.queue], entry{fileName: f, size: -1})
	}
	for q, list := range out {
		slices.SortFunc(list, compareEntries)
		out[q] = list
	}
	return out, nil
}

// stat fills e.size and e.mod; false when the file is gone.
func (e *entry) stat(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, e.name))
	if err != nil {
		return false
	}
	e.size, e.mod = fi.Size(), fi.ModTime()
	return true
}

// isNotExist reports a file or folder that is gone.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
