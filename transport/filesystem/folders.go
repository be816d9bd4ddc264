package filesystem

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// incompleteGrace is how long an empty message file is taken for one that
// its writer has created and not yet filled: Kombu's _put opens the file,
// writes through Python's buffer and flushes at close, so a reader may
// list the name while the file is still empty. Older empty files are
// delivered as malformed messages.
const incompleteGrace = time.Second

// folders does the blocking file work of one connection: publishing,
// claiming, settling and recovering. Its methods are safe for concurrent
// use (each is a few system calls on distinct names; renames arbitrate).
type folders struct {
	in, out, processed string
	storeProcessed     bool
	log                *slog.Logger

	owner    string   // this connection's id
	claimDir string   // in/.kombu-go/<owner>: the messages it holds
	lock     *os.File // in/.kombu-go/<owner>.lock, flock'ed while alive

	mu     sync.Mutex
	closed bool
}

// claimed is a message file this connection holds.
type claimed struct {
	queue string
	name  string // its Kombu name, kept while claimed
	data  []byte
}

// openFolders checks the folders and registers the connection: its lock
// file is created and locked before its claim folder exists, so a
// recovery pass never mistakes a starting connection for a dead one.
func openFolders(o Options) (*folders, error) {
	f := &folders{in: o.DataFolderIn, out: o.DataFolderOut, processed: o.ProcessedFolder,
		storeProcessed: o.StoreProcessed, log: o.Logger}
	need := []string{f.in, f.out}
	if f.storeProcessed {
		need = append(need, f.processed)
	}
	for _, d := range need {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, connErr("folder "+d, err)
		}
		if !fi.IsDir() {
			return nil, connErr("folder "+d, errors.New("not a directory"))
		}
	}
	base := filepath.Join(f.in, ourDir)
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, connErr("create "+base, err)
	}
	f.owner = fmt.Sprintf("c%d-%s", os.Getpid(), randomHex(6))
	lock, err := os.OpenFile(filepath.Join(base, f.owner+".lock"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, connErr("create lock file", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		os.Remove(lock.Name())
		return nil, connErr("lock "+lock.Name(), err)
	}
	f.lock = lock
	f.claimDir = filepath.Join(base, f.owner)
	if err := os.Mkdir(f.claimDir, 0o755); err != nil {
		f.release()
		return nil, connErr("create "+f.claimDir, err)
	}
	return f, nil
}

// release ends the registration: an empty claim folder and the lock file
// are removed; a claim folder that still holds messages (restore_on_close
// off, or a restore that failed) is left with its lock file, unlocked, for
// the next recovery pass of any connection.
func (f *folders) release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var err error
	if f.claimDir != "" {
		if e := os.Remove(f.claimDir); e == nil || isNotExist(e) {
			os.Remove(f.lock.Name())
		} else {
			f.log.Warn("filesystem: unsettled claims left for recovery", "folder", f.claimDir, "err", e)
		}
	} else {
		os.Remove(f.lock.Name())
	}
	if e := f.lock.Close(); e != nil {
		err = e
	}
	return err
}

// put writes a message of queue into the out folder: the bytes go to a
// temporary name first and are renamed to the Kombu name, so that no
// reader (ours or Kombu's) ever sees a partial file.
func (f *folders) put(queue string, data []byte) error {
	return writeRename(f.out, makeName(monotonicMillis(), queue), data)
}

// writeRename writes data as dir/name through a temporary file.
func writeRename(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return connErr("write message", err)
	}
	_, err = tmp.Write(data)
	if e := tmp.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return connErr("write message "+name, err)
	}
	return nil
}

// claimResult is what one claiming pass found.
type claimResult struct {
	got []claimed
	// young: an empty file was left for its writer to fill; look again
	// soon.
	young bool
	// more: the pass stopped at its limit with files left.
	more bool
	err  error
}

// listingTTL bounds how long one listing of the folder serves claiming
// passes. A consumer with a small prefetch window (1: Celery's fair
// scheduling) would otherwise list the whole folder for every message, as
// Kombu's _get does (quadratic in the backlog). A message put back at the
// front of its queue (restore, recovery) while a listing is in use waits
// at most this long for the next listing.
const listingTTL = 50 * time.Millisecond

// listing is one scan of the in folder, consumed by successive claiming
// passes of one consumer (its executor jobs only).
type listing struct {
	queues []string
	lists  map[string][]entry
	next   map[string]int
	at     time.Time
}

func (l *listing) usable(queues []string, now time.Time) bool {
	return l != nil && slices.Equal(l.queues, queues) && now.Sub(l.at) < listingTTL && l.remaining()
}

func (l *listing) remaining() bool {
	for q, list := range l.lists {
		if l.next[q] < len(list) {
			return true
		}
	}
	return false
}

// claim takes up to n messages of the queues, oldest first, round robin
// over the queues in their order. A message is taken by renaming its file
// into this connection's claim folder: of several consumers (processes,
// Kombu's included, whose _get is a rename too) exactly one rename
// succeeds; the others find the file gone and go on. prev is the listing
// a previous pass left (nil: list the folder); the listing to keep for
// the next pass is returned (nil when used up).
func (f *folders) claim(queues []string, n int, prev *listing) (claimResult, *listing) {
	var res claimResult
	now := time.Now()
	l := prev
	reused := l.usable(queues, now)
	if !reused {
		want := make(map[string]bool, len(queues))
		for _, q := range queues {
			want[q] = true
		}
		lists, err := scan(f.in, func(q string) bool { return want[q] })
		if err != nil {
			res.err = err
			return res, nil
		}
		l = &listing{queues: slices.Clone(queues), lists: lists, next: make(map[string]int, len(queues)), at: now}
	}
	for progress := true; progress && len(res.got) < n; {
		progress = false
		for _, q := range queues {
			list := l.lists[q]
			i := l.next[q]
			for i < len(list) && len(res.got) < n {
				e := list[i]
				i++
				c, status, err := f.claimOne(q, e, now)
				if err != nil {
					res.err = err
					l.next[q] = i
					return res, nil
				}
				if status == claimYoung {
					res.young = true
					continue
				}
				if status == claimGone {
					continue
				}
				res.got = append(res.got, c)
				progress = true
				break
			}
			l.next[q] = i
		}
	}
	if !l.remaining() {
		// A listing reused from an earlier pass does not show the files
		// that arrived since (their wake-up may have been spent on a pass
		// that used it): list again before stopping.
		res.more = reused
		return res, nil
	}
	res.more = true
	return res, l
}

type claimStatus int

const (
	claimOK claimStatus = iota
	claimGone
	claimYoung
)

// claimOne renames one file into the claim folder and reads it.
func (f *folders) claimOne(queue string, e entry, now time.Time) (claimed, claimStatus, error) {
	if !e.stat(f.in) {
		return claimed{}, claimGone, nil
	}
	if e.size == 0 && now.Sub(e.mod) < incompleteGrace {
		return claimed{}, claimYoung, nil
	}
	dst := filepath.Join(f.claimDir, e.name)
	if err := os.Rename(filepath.Join(f.in, e.name), dst); err != nil {
		if isNotExist(err) {
			// Taken by another consumer, or our claim folder is gone
			// (then the next rename fails the same way: check).
			if _, e2 := os.Stat(f.claimDir); e2 != nil {
				return claimed{}, claimGone, connErr("claim folder", e2)
			}
			return claimed{}, claimGone, nil
		}
		return claimed{}, claimGone, connErr("claim "+e.name, err)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		// Put it back rather than lose it.
		if e2 := os.Rename(dst, filepath.Join(f.in, e.name)); e2 != nil {
			f.log.Error("filesystem: a claimed message could not be read nor given back; it stays claimed for recovery",
				"file", dst, "err", err, "give_back_err", e2)
		}
		return claimed{}, claimGone, connErr("read "+e.name, err)
	}
	return claimed{queue: queue, name: e.name, data: data}, claimOK, nil
}

// finish settles a claim for good (ack, reject without requeue, no-ack
// delivery): the file is deleted, or moved to the processed folder.
func (f *folders) finish(name string) error {
	src := filepath.Join(f.claimDir, name)
	if !f.storeProcessed {
		if err := os.Remove(src); err != nil && !isNotExist(err) {
			return connErr("delete "+name, err)
		}
		return nil
	}
	return moveFile(src, filepath.Join(f.processed, name))
}

// giveBack returns a claimed message to the in folder, marked redelivered:
// under its own name (the front of its queue: Kombu's restore) when
// sameName, else under a new name (the back: a requeue).
func (f *folders) giveBack(c claimed, data []byte, sameName bool) error {
	name := c.name
	if !sameName {
		name = makeName(monotonicMillis(), c.queue)
	}
	if err := writeRename(f.in, name, data); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(f.claimDir, c.name)); err != nil && !isNotExist(err) {
		return connErr("delete claim "+c.name, err)
	}
	return nil
}

// moveFile renames src to dst, or copies and deletes across file systems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		if err != nil {
			return connErr("move to "+dst, err)
		}
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return connErr("move "+src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return connErr("move to "+dst, err)
	}
	_, err = io.Copy(out, in)
	if e := out.Close(); err == nil {
		err = e
	}
	if err != nil {
		return connErr("move to "+dst, err)
	}
	return os.Remove(src)
}

// size counts the ready messages of queue.
func (f *folders) size(queue string) (int, error) {
	lists, err := scan(f.in, func(q string) bool { return q == queue })
	if err != nil {
		return 0, connErr("size", err)
	}
	return len(lists[queue]), nil
}

// purge deletes the ready messages of queue.
func (f *folders) purge(queue string) (int, error) {
	lists, err := scan(f.in, func(q string) bool { return q == queue })
	if err != nil {
		return 0, connErr("purge", err)
	}
	n := 0
	for _, e := range lists[queue] {
		if err := os.Remove(filepath.Join(f.in, e.name)); err == nil {
			n++
		} else if !isNotExist(err) {
			return n, connErr("purge "+e.name, err)
		}
	}
	return n, nil
}

// connErr wraps a file-system failure as a connection error, so that
// messaging's ensure/retry treats an unreachable folder like an
// unreachable broker.
func connErr(op string, err error) error {
	return &transport.BrokerError{Kind: transport.KindConnection, Reason: "filesystem: " + op, Err: err}
}

// ownerOf returns the owner id of a lock file name, or "".
func ownerOf(name string) string {
	o, ok := strings.CutSuffix(name, ".lock")
	if !ok {
		return ""
	}
	return o
}
