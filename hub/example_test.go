package hub_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kombu-go/kombu/hub"
)

// A user registers their own reader, here the read end of a pipe, on the
// hub beside a timer that writes to it.
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
		n, _ := unix.Read(fd, buf)
		fmt.Printf("read %q\n", buf[:n])
		if got++; got == 2 {
			h.Remove(fd) // always before closing the fd
			h.Stop()
		}
	})
	tick := 0
	h.CallRepeatedly(5*time.Millisecond, func() {
		tick++
		fmt.Fprintf(os.NewFile(uintptr(w), "w"), "tick %d", tick)
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
