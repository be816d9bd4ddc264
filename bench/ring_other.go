//go:build unix && !linux

package bench

import (
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/poller"
)

func newToken() (int, int, error) {
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		return -1, -1, os.NewSyscallError("pipe", err)
	}
	unix.SetNonblock(fds[0], true)
	unix.SetNonblock(fds[1], true)
	return fds[0], fds[1], nil
}

func closeToken(r, w int) { unix.Close(r); unix.Close(w) }

const rawWakeSupported = false

func wakeRawBlocking(int) (time.Duration, error) { return 0, poller.ErrUnsupported }

// ringRaw uses the poller directly where epoll is missing.
func ringRaw(rg *ring, events int) (int, error) {
	p, err := poller.New()
	if err != nil {
		return 0, err
	}
	defer p.Close()
	for _, fd := range rg.rfd {
		if err := p.Add(fd, poller.Read); err != nil {
			return 0, err
		}
	}
	buf := make([]byte, 8)
	out := make([]poller.Ready, 128)
	count := 0
	unix.Write(rg.wfd[0], tokenByte)
	for {
		n, err := p.Wait(out, -1)
		if err != nil {
			return 0, err
		}
		for i := 0; i < n; i++ {
			fd := int(out[i].Fd)
			unix.Read(fd, buf)
			count++
			if count == events {
				return 1, nil
			}
			unix.Write(rg.next[fd], tokenByte)
		}
	}
}
