package amqp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// timeoutConn applies read_timeout and write_timeout to the socket
// amqp091 uses, as socket deadlines (pyamqp sets SO_RCVTIMEO and
// SO_SNDTIMEO).
//
//   - Every Write gets a deadline write_timeout ahead: a broker that stops
//     reading makes the write fail instead of blocking the executor
//     forever.
//   - While the client waits for an answer (expect ... done), reads get a
//     deadline read_timeout ahead, pushed back by every byte that arrives:
//     a broker that falls silent while a reply is due makes the read fail.
//     An idle connection waits for nothing and keeps no read deadline of
//     ours (only amqp091's heartbeat deadline, which this conn merges).
//
// A failed read or write makes amqp091 close the connection; the transport
// then treats it as lost (and recovers it, if recovery is on).
type timeoutConn struct {
	net.Conn
	rt, wt time.Duration

	mu      sync.Mutex
	waiting int       // answers awaited
	hb      time.Time // the read deadline amqp091 (or the dial) asked for
	cur     time.Time // the read deadline in force
}

func newTimeoutConn(c net.Conn, readTimeout, writeTimeout time.Duration) *timeoutConn {
	return &timeoutConn{Conn: c, rt: readTimeout, wt: writeTimeout}
}

// errReadTimeout and errWriteTimeout describe the deadlines that fired.
var (
	errReadTimeout  = errors.New("amqp: read_timeout: the broker sent nothing while an answer was due")
	errWriteTimeout = errors.New("amqp: write_timeout: the broker did not take the write in time")
)

func (c *timeoutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.rt > 0 {
		c.mu.Lock()
		if c.waiting > 0 {
			c.applyLocked()
		}
		c.mu.Unlock()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.mu.Lock()
		ours := c.waiting > 0 && (c.hb.IsZero() || c.cur.Before(c.hb))
		c.mu.Unlock()
		if ours {
			err = fmt.Errorf("%w (%v): %w", errReadTimeout, c.rt, err)
		}
	}
	return n, err
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	if c.wt <= 0 {
		return c.Conn.Write(p)
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.wt))
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w (%v): %w", errWriteTimeout, c.wt, err)
	}
	return n, err
}

// SetReadDeadline records the caller's deadline (amqp091's heartbeat
// deadline) and applies the earlier of it and ours.
func (c *timeoutConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hb = t
	return c.applyLocked()
}

// SetDeadline sets the read deadline as SetReadDeadline does and the write
// deadline as given (the dial bounds the handshake with it).
func (c *timeoutConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// applyLocked sets the read deadline in force: the caller's, or ours when
// an answer is awaited and ours is earlier.
func (c *timeoutConn) applyLocked() error {
	d := c.hb
	if c.waiting > 0 && c.rt > 0 {
		if ours := time.Now().Add(c.rt); d.IsZero() || ours.Before(d) {
			d = ours
		}
	}
	c.cur = d
	return c.Conn.SetReadDeadline(d)
}

// expect marks the start of a wait for the broker's answer; the returned
// function marks its end.
func (c *timeoutConn) expect() func() {
	if c.rt <= 0 {
		return func() {}
	}
	c.mu.Lock()
	c.waiting++
	if c.waiting == 1 {
		_ = c.applyLocked()
	}
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.waiting--
			if c.waiting == 0 {
				_ = c.applyLocked()
			}
			c.mu.Unlock()
		})
	}
}
