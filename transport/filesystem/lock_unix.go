//go:build linux || darwin || freebsd

package filesystem

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive flock on f, without waiting.
func lockFile(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}
