//go:build unix

package redis

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The descriptor operations of the hub sockets (unix systems).

func fdRead(fd int, p []byte) (int, error)  { return unix.Read(fd, p) }
func fdWrite(fd int, p []byte) (int, error) { return unix.Write(fd, p) }
func fdClose(fd int) error                  { return unix.Close(fd) }

// isAgain and isIntr classify the errors of fdRead and fdWrite.
func isAgain(err error) bool { return errors.Is(err, unix.EAGAIN) }
func isIntr(err error) bool  { return errors.Is(err, unix.EINTR) }

// fdWaitReadable waits up to d for fd to be readable (close path only).
func fdWaitReadable(fd int, d time.Duration) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		return n > 0, err
	}
}

// takeFD duplicates the socket of nc (keeping O_NONBLOCK, which the
// duplicate shares) and closes nc. Never File().Fd(): that makes the socket
// blocking.
func takeFD(nc net.Conn) (int, error) {
	defer nc.Close()
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("redis: %T has no file descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

// socketPair returns a connected pair of unix stream sockets: the first a
// non-blocking descriptor for the hub, the second as a net.Conn.
func socketPair() (int, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, nil, os.NewSyscallError("socketpair", err)
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return -1, nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fds[1]), "redis-tls-bridge")
	pc, err := net.FileConn(f) // dups the descriptor
	f.Close()
	if err != nil {
		unix.Close(fds[0])
		return -1, nil, err
	}
	return fds[0], pc, nil
}
