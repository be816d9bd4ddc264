//go:build !linux && !darwin && !freebsd

package filesystem

import (
	"errors"
	"os"
)

// lockFile has no flock to use here: the transport cannot tell live
// connections from dead ones, so Dial fails.
func lockFile(f *os.File) error {
	return errors.New("filesystem: file locks (flock) are not supported on this platform")
}
