//go:build linux

package bench

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// newToken is an eventfd: one descriptor is both ends, so 9000 tokens fit
// under the machine's 20,000 open files.
func newToken() (int, int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, -1, os.NewSyscallError("eventfd", err)
	}
	return fd, fd, nil
}

func closeToken(r, w int) { unix.Close(r) }

const rawWakeSupported = true

// ringRaw is the floor: epoll_wait, a handler slice indexed by fd, read and
// write, and nothing else.
func ringRaw(rg *ring, events int) (int, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, os.NewSyscallError("epoll_create1", err)
	}
	defer unix.Close(epfd)
	for _, fd := range rg.rfd {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return 0, os.NewSyscallError("epoll_ctl", err)
		}
	}
	buf := make([]byte, 8)
	count := 0
	handler := func(fd int) bool {
		unix.Read(fd, buf)
		count++
		if count == events {
			return false
		}
		unix.Write(rg.next[fd], tokenByte)
		return true
	}
	evs := make([]unix.EpollEvent, 128)
	unix.Write(rg.wfd[0], tokenByte)
	for {
		n, err := unix.EpollWait(epfd, evs, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("epoll_wait", err)
		}
		for i := 0; i < n; i++ {
			if !handler(int(evs[i].Fd)) {
				return 1, nil
			}
		}
	}
}

// wakeRawBlocking: the waiter's thread blocks in epoll_wait(-1) on an
// eventfd; the round trip shows the wake-up trap of DESIGN.md.
func wakeRawBlocking(iters int) (time.Duration, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, err
	}
	defer unix.Close(epfd)
	efd, _, err := newToken()
	if err != nil {
		return 0, err
	}
	defer unix.Close(efd)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		return 0, err
	}
	stop := make(chan struct{})
	pong := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		evs := make([]unix.EpollEvent, 4)
		buf := make([]byte, 8)
		for {
			n, err := unix.EpollWait(epfd, evs, -1)
			if err == unix.EINTR || n == 0 {
				continue
			}
			unix.Read(efd, buf)
			select {
			case <-stop:
				return
			default:
			}
			pong <- struct{}{}
		}
	}()
	var total time.Duration
	for i := 0; i < iters; i++ {
		idle()
		t := time.Now()
		unix.Write(efd, tokenByte)
		<-pong
		total += time.Since(t)
	}
	close(stop)
	unix.Write(efd, tokenByte)
	wg.Wait()
	return total, nil
}
