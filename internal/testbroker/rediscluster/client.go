package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/kombu-go/kombu/internal/resp"
)

// queryTimeout bounds one command against one node when the caller's
// context has no earlier deadline: a node that was just killed must not
// stall a poll.
const queryTimeout = 2 * time.Second

// conn is a blocking RESP2 connection to one node, for the helper's own
// queries (CLUSTER NODES, CLUSTER SLOTS, CLUSTER KEYSLOT, INFO). It is used
// by one goroutine and starts none.
type conn struct {
	nc  net.Conn
	rd  resp.Reader
	out []byte
	in  []byte
}

// dial connects to addr within ctx and queryTimeout.
func dial(ctx context.Context, addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, in: make([]byte, 16<<10)}, nil
}

func (c *conn) close() { c.nc.Close() }

// pipeline sends cmds at once and returns their replies, in order. A server
// error reply is returned as an error (the first one, after every reply has
// been read), so the connection stays in step.
func (c *conn) pipeline(ctx context.Context, cmds ...[]string) ([]resp.Value, error) {
	deadline := time.Now().Add(queryTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	c.out = c.out[:0]
	for _, cmd := range cmds {
		c.out = resp.AppendCommand(c.out, cmd...)
	}
	if _, err := c.nc.Write(c.out); err != nil {
		return nil, err
	}
	replies := make([]resp.Value, 0, len(cmds))
	var first error
	for len(replies) < len(cmds) {
		v, ok, err := c.rd.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			n, err := c.nc.Read(c.in)
			if n > 0 {
				c.rd.Feed(c.in[:n])
			}
			if err != nil && n == 0 {
				return nil, err
			}
			continue
		}
		if e := v.Err(); e != nil && first == nil {
			first = fmt.Errorf("%s: %w", cmds[len(replies)][0], e)
		}
		replies = append(replies, v.Clone())
	}
	return replies, first
}

// do sends one command and returns its reply.
func (c *conn) do(ctx context.Context, args ...string) (resp.Value, error) {
	vs, err := c.pipeline(ctx, args)
	if len(vs) == 0 {
		return resp.Value{}, err
	}
	return vs[0], err
}

// query dials addr, sends one command, and closes the connection.
func query(ctx context.Context, addr string, args ...string) (resp.Value, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return resp.Value{}, err
	}
	defer c.close()
	v, err := c.do(ctx, args...)
	if err != nil {
		return v, fmt.Errorf("%s: %w", addr, err)
	}
	return v, nil
}

// errNoNode says no node of the cluster answered.
var errNoNode = errors.New("rediscluster: no node of the cluster answers")
