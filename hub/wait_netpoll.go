//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package hub

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// initNetpoll hands a duplicate of the poller descriptor to Go's netpoller,
// so the hub goroutine can park until the poller has events without holding
// a thread in a system call.
func (h *Hub) initNetpoll() error {
	fd, err := unix.Dup(h.p.Fd())
	if err != nil {
		return os.NewSyscallError("dup", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), "hub-poller")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return fmt.Errorf("hub: netpoll: %w", err)
	}
	// A non-pollable file makes RawConn.Read spin instead of park: refuse it.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return fmt.Errorf("hub: netpoll: poller fd not pollable: %w", err)
	}
	h.waitF, h.waitRC = f, rc
	return nil
}

// pollNetpoll parks in the runtime's netpoller until the poller descriptor
// is readable (or the hub is woken, or wait passes), then collects the
// events without blocking.
func (h *Hub) pollNetpoll(wait time.Duration) (int, error) {
	n, err := h.p.Wait(h.events, 0)
	if n > 0 || err != nil || h.wakeDue() {
		return n, err
	}
	var dl time.Time
	if wait > 0 {
		dl = time.Now().Add(wait)
	}
	if !dl.Equal(h.lastDeadline) {
		if err := h.waitF.SetReadDeadline(dl); err != nil {
			return 0, err
		}
		h.lastDeadline = dl
	}
	var werr error
	err = h.waitRC.Read(func(uintptr) bool {
		n, werr = h.p.Wait(h.events, 0)
		return n > 0 || werr != nil || h.wakeDue()
	})
	if werr != nil {
		return 0, werr
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	return n, nil
}
