package hub_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/hub"
)

// A user registers their own reader, here the read end of a pipe, on the
// hub beside a timer that writes to it. The descriptors are plain numbers
// used with unix.Read and unix.Write: wrapping one in an *os.File would
// hand it to that File's finalizer, which closes it once the File is
// garbage (the timer forces a collection to show that nothing does).
func Example_reader() {
	h, err := hub.New(hub.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		fmt.Println(err)
		return
	}
	r, w := fds[0], fds[1]
	unix.SetNonblock(r, true)
	defer unix.Close(w)
	defer unix.Close(r)

	got := 0
	h.AddReader(r, func(fd int, ev hub.Event) {
		buf := make([]byte, 64)
		n, err := unix.Read(fd, buf)
		if err != nil {
			fmt.Println("read:", err)
			h.Stop()
			return
		}
		fmt.Printf("read %q\n", buf[:n])
		if got++; got == 2 {
			h.Remove(fd) // always before closing the fd
			h.Stop()
		}
	})
	tick := 0
	h.CallRepeatedly(5*time.Millisecond, func() {
		runtime.GC()
		tick++
		if _, err := unix.Write(w, fmt.Appendf(nil, "tick %d", tick)); err != nil {
			fmt.Println("write:", err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// read "tick 1"
	// read "tick 2"
}

// A UDP socket read on the hub. The hub needs a non-blocking descriptor it
// owns: open the socket with the net package, duplicate its descriptor
// through SyscallConn (never File().Fd(), which makes the socket
// blocking), and close the net.PacketConn. Datagrams come from another
// goroutine here, as they would from another process.
func Example_udp() {
	h, err := hub.New(hub.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	addr := pc.LocalAddr().String()
	fd, err := dupFd(pc.(syscall.Conn))
	pc.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unix.Close(fd)

	got := 0
	err = h.AddReader(fd, func(fd int, ev hub.Event) {
		buf := make([]byte, 1500)
		for { // a readiness event may stand for several datagrams
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err == unix.EAGAIN || err == unix.EINTR {
				return
			}
			if err != nil {
				fmt.Println("recvfrom:", err)
				h.Stop()
				return
			}
			fmt.Printf("datagram %q\n", buf[:n])
			if got++; got == 3 {
				h.Remove(fd)
				h.Stop()
				return
			}
		}
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	sent := make(chan error, 1)
	go func() {
		c, err := net.Dial("udp", addr)
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		for i := 1; i <= 3; i++ {
			if _, err := fmt.Fprintf(c, "ping %d", i); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Run(ctx); err != nil {
		fmt.Println(err)
	}
	if err := <-sent; err != nil {
		fmt.Println(err)
	}
	// Output:
	// datagram "ping 1"
	// datagram "ping 2"
	// datagram "ping 3"
}

// dupFd returns a non-blocking, close-on-exec duplicate of a socket's
// descriptor, which the caller owns.
func dupFd(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	err = rc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) })
	if err == nil {
		err = derr
	}
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
