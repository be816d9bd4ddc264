package faulttest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer accepts connections and echoes each line back; it reports the
// error that ended each connection's read on errs.
func echoServer(t *testing.T) (addr string, errs <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // joined at cleanup
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, err := io.Copy(c, c)
				out <- err
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), out
}

// roundTrip writes a line and reads it back.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // hang guard
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo through the proxy: got %q, %v; want %q", got, err, line+"\n")
	}
}

func TestProxyForwardsAndResets(t *testing.T) {
	target, serverErrs := echoServer(t)
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		roundTrip(t, c, r, "hello")
		clients = append(clients, c)
	}
	if n := p.Live(); n != 3 {
		t.Fatalf("Live() = %d with 3 connected clients, want 3", n)
	}
	if n := p.ResetAll(); n != 3 {
		t.Fatalf("ResetAll() = %d, want 3", n)
	}
	// Both ends see a reset, not a clean end of stream.
	for i, c := range clients {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d: read after ResetAll: %v, want ECONNRESET", i, err)
		}
	}
	for i := range clients {
		select {
		case err := <-serverErrs:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("server connection %d ended with %v, want ECONNRESET", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("server connection %d did not end after ResetAll", i)
		}
	}
	if n := p.Live(); n != 0 {
		t.Errorf("Live() = %d after ResetAll, want 0", n)
	}

	// New connections are served after a reset.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, bufio.NewReader(c), "again")
}

func TestProxyCleanCloseIsNotAReset(t *testing.T) {
	target, serverErrs := echoServer(t)
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, bufio.NewReader(c), "bye")
	c.Close()
	select {
	case err := <-serverErrs:
		if err != nil {
			t.Errorf("server side of a cleanly closed client ended with %v, want a clean EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server connection did not end after the client closed")
	}
}
