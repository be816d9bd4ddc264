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
	h.parkFn = h.parkReady
	return nil
}

// pollNetpoll parks in the runtime's netpoller until the poller descriptor
// is readable (or the hub is woken, or wait passes), then collects the
// events without blocking. The fast path (events already pending) must not
// allocate: the parking callback is a method value bound once in
// initNetpoll, and its results travel in hub fields, not captured locals.
func (h *Hub) pollNetpoll(wait time.Duration) (int, error) {
	n, err := h.p.Wait(h.events, 0)
	if n > 0 || err != nil || h.wakeDue() {
		return n, err
	}
	return h.parkNetpoll(wait)
}

func (h *Hub) parkNetpoll(wait time.Duration) (int, error) {
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
	h.parkN, h.parkErr = 0, nil
	err := h.waitRC.Read(h.parkFn)
	if h.parkErr != nil {
		return 0, h.parkErr
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, nil
		}
		return 0, err
	}
	return h.parkN, nil
}

// parkReady is the RawConn.Read callback: true ends the wait.
func (h *Hub) parkReady(uintptr) bool {
	h.parkN, h.parkErr = h.p.Wait(h.events, 0)
	return h.parkN > 0 || h.parkErr != nil || h.wakeDue()
}
