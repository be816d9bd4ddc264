package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/internal/resp"
)

// pubConn is a connection that PublishBatch writes RESP to directly: the
// commands are appended to one buffer as the messages are encoded, written
// in pieces while the rest are still being encoded (so that Redis works on
// the first ones meanwhile), and the replies are read with internal/resp.
// Through go-redis each message cost a command object, its arguments boxed
// in interfaces and a copy of the envelope (measured: a batch of 100 at
// about half the rate of a plain go-redis pipeline of ready envelopes).
type pubConn struct {
	nc  net.Conn
	rd  resp.Reader
	out []byte
	in  []byte
	// tags and enc serve the batches of this connection, one at a time:
	// a block of tags is used up across batches rather than dropped at
	// the end of each, and the encoder keeps its buffer.
	tags channel.TagBlock
	enc  channel.EnvelopeEncoder
}

// pubPool holds the idle pubConns of a connection (or, in a cluster, of
// one node: nodePools). Its mutex guards free and closed: PublishBatch
// runs on its callers' goroutines, several at once, and never on the hub.
type pubPool struct {
	mu     sync.Mutex
	free   []*pubConn
	closed bool
}

// maxIdlePub bounds the idle pubConns kept, and pubRetain the buffer a
// pubConn keeps between batches.
const (
	maxIdlePub = 4
	pubRetain  = 1 << 20
	// pubChunk is how many bytes of commands are written at a time, and
	// pubReplies how many replies may be outstanding before they are read.
	pubChunk   = 8 << 10
	pubReplies = 4096
)

// getPub returns an idle pubConn or dials one (AUTH, SELECT and CLIENT
// SETNAME as configured, checked before it is used).
func (c *Conn) getPub(ctx context.Context) (*pubConn, error) { return c.pub.get(ctx, c, "") }

// get returns an idle pubConn of p or dials one to addr (see dialConn).
func (p *pubPool) get(ctx context.Context, c *Conn, addr string) (*pubConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosedConn
	}
	if n := len(p.free); n > 0 {
		pc := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()
	nc, err := c.dialConn(ctx, addr)
	if err != nil {
		return nil, err
	}
	pc := &pubConn{nc: nc, in: make([]byte, 16<<10)}
	o := c.o
	var b []byte
	n := 0
	if o.password != "" {
		if o.username != "" {
			b = resp.AppendCommand(b, "AUTH", o.username, o.password)
		} else {
			b = resp.AppendCommand(b, "AUTH", o.password)
		}
		n++
	}
	if o.db != 0 {
		b = resp.AppendCommand(b, "SELECT", strconv.Itoa(o.db))
		n++
	}
	if o.clientName != "" {
		b = resp.AppendCommand(b, "CLIENT", "SETNAME", o.clientName)
		n++
	}
	if n > 0 {
		stop := pc.deadline(ctx, o)
		defer stop()
		err := pc.write(b)
		if err == nil {
			err = pc.readReplies(n)
		}
		if err != nil {
			nc.Close()
			return nil, err
		}
	}
	return pc, nil
}

// putPub returns a healthy pubConn to the pool, or closes it.
func (c *Conn) putPub(pc *pubConn, healthy bool) { c.pub.put(pc, healthy) }

// put returns a healthy pubConn to p, or closes it.
func (p *pubPool) put(pc *pubConn, healthy bool) {
	if cap(pc.out) > pubRetain {
		pc.out = nil
	}
	pc.out = pc.out[:0]
	pc.rd.Reset()
	p.mu.Lock()
	if healthy && !p.closed && len(p.free) < maxIdlePub {
		p.free = append(p.free, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pc.nc.Close()
}

// closePub closes the idle pubConns; those in use are closed when they
// come back.
func (c *Conn) closePub() { c.pub.close() }

// close closes p's idle pubConns, and those put back later.
func (p *pubPool) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, pc := range free {
		pc.nc.Close()
	}
}

// deadline bounds the pubConn's I/O by ctx's deadline, or socket_timeout
// (go-redis's 3 s when unset), and interrupts it when ctx is cancelled.
// The returned function undoes it.
func (pc *pubConn) deadline(ctx context.Context, o *options) (stop func()) {
	d := o.sockTimeout
	if d <= 0 {
		d = 3 * time.Second
	}
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		t = dl
	}
	pc.nc.SetDeadline(t)
	cancel := context.AfterFunc(ctx, func() { pc.nc.SetDeadline(time.Unix(1, 0)) })
	return func() { cancel() }
}

// write writes b whole.
func (pc *pubConn) write(b []byte) error {
	for len(b) > 0 {
		n, err := pc.nc.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readReplies reads n replies; the first error reply is returned (as a
// replyError, the connection still usable) once all n are read.
func (pc *pubConn) readReplies(n int) error {
	var first error
	for n > 0 {
		v, ok, err := pc.rd.Next()
		if err != nil {
			return err
		}
		if ok {
			n--
			if v.Kind == resp.Error && first == nil {
				first = replyError{v.Err()}
			}
			continue
		}
		m, err := pc.nc.Read(pc.in)
		if m > 0 {
			pc.rd.Feed(pc.in[:m])
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	return first
}

// replyError is an error reply from Redis: the connection is fine.
type replyError struct{ err error }

func (e replyError) Error() string { return e.err.Error() }
func (e replyError) Unwrap() error { return e.err }

// pubBatch is one PublishBatch's commands on a pubConn: appended, written
// in chunks, their replies read at the end (or every pubReplies).
type pubBatch struct {
	pc      *pubConn
	pending int   // commands written or buffered whose reply is not read
	err     error // an I/O error: the connection is unusable
	failed  error // the first error reply
}

// add counts one command appended to pc.out, and writes (and reads the
// replies) when enough has gathered.
func (b *pubBatch) add() {
	b.pending++
	if b.err != nil {
		return
	}
	if len(b.pc.out) >= pubChunk {
		b.err = b.pc.write(b.pc.out)
		b.pc.out = b.pc.out[:0]
	}
	if b.err == nil && b.pending >= pubReplies {
		b.finish()
	}
}

// finish writes what is buffered and reads every outstanding reply; it
// returns the I/O error, or else the first error reply of the batch.
func (b *pubBatch) finish() error {
	if b.err == nil && len(b.pc.out) > 0 {
		b.err = b.pc.write(b.pc.out)
		b.pc.out = b.pc.out[:0]
	}
	if b.err == nil && b.pending > 0 {
		err := b.pc.readReplies(b.pending)
		b.pending = 0
		var re replyError
		if errors.As(err, &re) {
			if b.failed == nil {
				b.failed = err // a command failed; the connection is fine
			}
		} else {
			b.err = err
		}
	}
	if b.err != nil {
		return b.err
	}
	return b.failed
}

var errClosedConn = fmt.Errorf("redis: publish on a closed connection")
