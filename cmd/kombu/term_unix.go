//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether fd is a terminal (the termios ioctl works on
// it, as isatty does).
func isTerminal(fd int) bool {
	if fd < 0 {
		return false
	}
	_, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	return err == nil
}

// termSize returns the columns and rows of the terminal fd, or 0, 0.
func termSize(fd int) (cols, rows int) {
	if fd < 0 {
		return 0, 0
	}
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return int(ws.Col), int(ws.Row)
}

// cbreak turns off line buffering and echo on the terminal fd, so that a
// key press can be read at once, and returns the function that restores
// the previous mode. Signals (Ctrl-C) still work.
func cbreak(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, ioctlSetTermios, old) }, nil
}

// waitReadable waits up to d for fd to become readable (poll(2)); false on
// timeout or an interrupted wait.
func waitReadable(fd int, d time.Duration) bool {
	ms := int(d / time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, ms)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
}

// readFd reads from fd (the terminal, in cbreak mode).
func readFd(fd int, b []byte) (int, error) { return unix.Read(fd, b) }
