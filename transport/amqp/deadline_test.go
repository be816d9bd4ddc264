package amqp

import (
	"errors"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestTimeoutConnRead needs no broker: a read waits without bound while
// nothing is expected, gets read_timeout once an answer is expected, and
// every byte that arrives pushes the deadline back.
func TestTimeoutConnRead(t *testing.T) {
	client, server := tcpPair(t)
	tc := newTimeoutConn(client, 200*time.Millisecond, 0)
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := tc.Read(buf); err != nil {
				got <- err
				return
			}
		}
	}()
	time.Sleep(400 * time.Millisecond) // idle: twice read_timeout, expecting nothing
	select {
	case err := <-got:
		t.Fatalf("an idle read failed: %v", err)
	default:
	}
	done := tc.expect()
	defer done()
	for range 4 { // the broker keeps talking: no timeout
		time.Sleep(100 * time.Millisecond)
		server.Write([]byte{1})
	}
	select {
	case err := <-got:
		t.Fatalf("a read failed while bytes kept arriving: %v", err)
	default:
	}
	select {
	case err := <-got:
		if !errors.Is(err, errReadTimeout) {
			t.Fatalf("err = %v, want errReadTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not time out once the broker fell silent")
	}
}

// TestTimeoutConnWrite needs no broker: a write the peer does not read
// fails after write_timeout.
func TestTimeoutConnWrite(t *testing.T) {
	client, _ := tcpPair(t) // the server end never reads
	tc := newTimeoutConn(client, 0, 200*time.Millisecond)
	buf := make([]byte, 1<<20)
	var err error
	for i := 0; i < 256 && err == nil; i++ { // up to 256 MiB: far beyond the socket buffers
		_, err = tc.Write(buf)
	}
	if !errors.Is(err, errWriteTimeout) {
		t.Fatalf("err = %v, want errWriteTimeout", err)
	}
}

// TestTimeoutConnKeepsHeartbeatDeadline: amqp091's own read deadline (its
// heartbeat check) stays in force when it is earlier than ours.
func TestTimeoutConnKeepsHeartbeatDeadline(t *testing.T) {
	client, _ := tcpPair(t)
	tc := newTimeoutConn(client, time.Hour, 0)
	done := tc.expect()
	defer done()
	if err := tc.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := tc.Read(make([]byte, 1))
	if err == nil || errors.Is(err, errReadTimeout) {
		t.Fatalf("err = %v, want the caller's own deadline (not read_timeout)", err)
	}
}
