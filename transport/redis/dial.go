package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// dialResult carries a dialled socket from its dial goroutine to the hub.
// claimed makes sure exactly one side owns the descriptor: the hub when the
// posted callback runs, or Conn.Close (releaseDials) when the hub was gone
// before that.
type dialResult struct {
	fd      int
	addr    string // the node dialled ("": the configured address)
	err     error
	claimed atomic.Bool
}

// release closes the descriptor of a result nobody claimed.
func (r *dialResult) release() {
	if r.claimed.CompareAndSwap(false, true) && r.err == nil {
		fdClose(r.fd)
	}
}

// dialFD connects to the Redis server (the current master when Redis is
// reached through sentinels) and returns a non-blocking descriptor the hub
// may own: the net.Conn's socket is duplicated and the net.Conn closed, so
// Go's runtime poller no longer watches it. A TLS connection cannot be
// read through a raw descriptor; it is bridged instead (see bridgeTLS).
func (c *Conn) dialFD(ctx context.Context, addr string) (int, error) {
	nc, err := c.dialConn(ctx, addr)
	if err != nil {
		return -1, err
	}
	if tc, ok := nc.(*tls.Conn); ok {
		return c.bridgeTLS(tc)
	}
	return takeFD(nc)
}

// dialConn connects to the Redis server (the current master when Redis is
// reached through sentinels; to, when not "": a cluster node), with TLS
// when configured; nothing is sent on the connection yet.
func (c *Conn) dialConn(ctx context.Context, to string) (net.Conn, error) {
	network, addr := c.o.network, c.o.addr
	if to != "" {
		addr = to
	}
	if c.o.masterName != "" {
		a, err := c.masterAddr(ctx)
		if err != nil {
			return nil, err
		}
		network, addr = "tcp", a
	}
	d := net.Dialer{Timeout: c.o.connTimeout, KeepAlive: c.o.keepAlive}
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if c.o.tls == nil {
		return nc, nil
	}
	cfg := c.o.tls.Clone()
	if cfg.ServerName == "" {
		if h, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = h
		}
	}
	tc := tls.Client(nc, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.o.connTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// bridgeTLS is the TLS fallback: crypto/tls needs a net.Conn read by a
// goroutine, so the hub gets one end of a unix socket pair and two
// goroutines copy between the other end and the TLS connection. The hub's
// code is the same as for a plain socket. When either side closes, both
// goroutines close everything and exit; they belong to the Conn, which
// joins them in Close.
func (c *Conn) bridgeTLS(tc *tls.Conn) (int, error) {
	fd, pc, err := socketPair()
	if err != nil {
		tc.Close()
		return -1, err
	}
	var once sync.Once
	shut := func() {
		once.Do(func() {
			tc.Close()
			pc.Close()
		})
	}
	c.wg.Add(2)
	go func() { // server -> hub
		defer c.wg.Done()
		io.Copy(pc, tc)
		shut()
	}()
	go func() { // hub -> server
		defer c.wg.Done()
		io.Copy(tc, pc)
		shut()
	}()
	return fd, nil
}

// masterAddr asks the sentinels, in order, for the address of the master.
func (c *Conn) masterAddr(ctx context.Context) (string, error) {
	var errs []error
	for _, s := range c.o.sentinels {
		sc := goredis.NewSentinelClient(&goredis.Options{
			Addr: s, Username: c.o.sentinelUsr, Password: c.o.sentinelPwd,
			DialTimeout: c.o.connTimeout, Protocol: 2, DisableIdentity: true,
		})
		addr, err := sc.GetMasterAddrByName(ctx, c.o.masterName).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected reply %q", addr)
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", s, err))
	}
	return "", fmt.Errorf("redis: no sentinel knows master %q: %w", c.o.masterName, errors.Join(errs...))
}

// target is the node a hub socket dials: "" (the configured address, or
// the sentinels' master) on a single node; in a cluster the master of
// slot, with the slot map read again first when refresh is set (the last
// connection failed: a failover or a moved slot).
func (c *Conn) target(ctx context.Context, slot int, refresh bool) (string, error) {
	if c.topo == nil {
		return "", nil
	}
	return c.topo.masterOf(ctx, slot, refresh)
}

// slot is the cluster slot of the queue a store's records belong to, or 0
// for the channel's own store (its PSUBSCRIBE socket may use any node).
func (st *store) slot() int {
	if st.o.queue == "" {
		return 0
	}
	return slotOf(st.o.key(st.o.queueKey(st.o.queue, 0)))
}

// clientUnblock sends CLIENT UNBLOCK for a hub socket's client id to the
// node the socket is connected to (addr, in a cluster; the go-redis
// client's server otherwise).
func (c *Conn) clientUnblock(ctx context.Context, addr string, id int64) (int64, error) {
	if c.topo == nil || addr == "" {
		return c.rdb.ClientUnblock(ctx, id).Result()
	}
	nc, err := c.topo.node(addr)
	if err != nil {
		return 0, err
	}
	return nc.ClientUnblock(ctx, id).Result()
}
