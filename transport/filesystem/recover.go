package filesystem

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleTemp is the age after which a temporary file (a publish whose
// writer died between create and rename) is deleted by a recovery pass.
const staleTemp = 10 * time.Minute

// recoverDead gives back the messages claimed by dead connections and
// returns how many. A connection is dead when its lock file can be locked:
// the kernel drops a flock when the process holding it exits, however it
// exits (kill -9 included), so a live connection, even a stalled one, is
// never robbed. Each message goes back under its own name (so at the front
// of its queue, as Kombu's restore), marked redelivered.
func (f *folders) recoverDead() (int, error) {
	base := filepath.Join(f.in, ourDir)
	ents, err := os.ReadDir(base)
	if err != nil {
		return 0, connErr("list "+base, err)
	}
	total := 0
	var errs []error
	for _, de := range ents {
		owner := ownerOf(de.Name())
		if owner == "" || owner == f.owner {
			continue
		}
		n, err := f.recoverOwner(base, owner)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	f.removeStaleTemps(f.out)
	if f.in != f.out {
		f.removeStaleTemps(f.in)
	}
	return total, errors.Join(errs...)
}

// recoverOwner takes the lock of one connection if it is dead and gives
// its claims back.
func (f *folders) recoverOwner(base, owner string) (int, error) {
	path := filepath.Join(base, owner+".lock")
	lf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if isNotExist(err) {
			return 0, nil // recovered meanwhile by someone else
		}
		return 0, connErr("open "+path, err)
	}
	defer lf.Close()
	if lockFile(lf) != nil {
		return 0, nil // alive
	}
	// Another pass may have recovered this owner and removed the file we
	// opened: then ours is a stale inode and there is nothing to do.
	held, err1 := lf.Stat()
	now, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, now) {
		return 0, nil
	}
	dir := filepath.Join(base, owner)
	ents, err := os.ReadDir(dir)
	if err != nil && !isNotExist(err) {
		return 0, connErr("list "+dir, err)
	}
	n := 0
	for _, de := range ents {
		if _, ok := parseName(de.Name()); !ok {
			continue
		}
		src := filepath.Join(dir, de.Name())
		data, err := os.ReadFile(src)
		if err != nil {
			return n, connErr("read "+src, err)
		}
		if marked, err := markRedelivered(data); err == nil {
			data = marked
		} // else: not an envelope; it goes back as it is, to the decode-error path
		if err := writeRename(f.in, de.Name(), data); err != nil {
			return n, err
		}
		if err := os.Remove(src); err != nil && !isNotExist(err) {
			return n, connErr("delete "+src, err)
		}
		n++
	}
	if err := os.Remove(dir); err != nil && !isNotExist(err) {
		return n, connErr("remove "+dir, err)
	}
	if err := os.Remove(path); err != nil && !isNotExist(err) {
		return n, connErr("remove "+path, err)
	}
	if n > 0 {
		f.log.Info("filesystem: recovered the messages of a dead connection", "owner", owner, "messages", n)
	}
	return n, nil
}

// removeStaleTemps deletes temporary files left by writers that died.
func (f *folders) removeStaleTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range ents {
		if !strings.HasPrefix(de.Name(), tmpPrefix) {
			continue
		}
		if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}
