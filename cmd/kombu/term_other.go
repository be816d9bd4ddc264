//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"errors"
	"time"
)

// isTerminal is false where the termios ioctls are not available: no
// progress bar, and top prints plain refreshes.
func isTerminal(fd int) bool { return false }

func termSize(fd int) (cols, rows int) { return 0, 0 }

func cbreak(fd int) (func(), error) { return nil, errors.New("no terminal control on this platform") }

func waitReadable(fd int, d time.Duration) bool {
	time.Sleep(d)
	return false
}

func readFd(fd int, b []byte) (int, error) { return 0, errors.New("not supported") }
