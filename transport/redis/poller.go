package redis

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/internal/resp"
)

// multiPoller is Kombu's MultiChannelPoller for one connection: the
// channels (stores) attached to the connection, their hub sockets by
// descriptor, and the timers of the Redis transport (visibility-timeout
// restore, pub/sub health check, reply watchdog). Hub goroutine only,
// except for the dial bookkeeping (dmu).
type multiPoller struct {
	c      *Conn
	h      *hub.Hub
	stores []*store
	// socks maps a registered descriptor to its socket and the generation it
	// was registered under: a stale event (a descriptor closed and reused)
	// finds another generation and is dropped.
	socks  map[int]sockRef
	gen    uint64
	buf    []byte
	timers []func() // cancel functions of the repeating timers
	closed bool

	restoreCalls int  // Kombu's _vrestore_count
	restoredOnce bool // the on_poll_init restore ran

	// leased are the stores whose consumer leases the poller renews
	// (lease.go); leaseTimer cancels the renewal timer.
	leased     []*store
	leaseTimer func()

	// nodes are the node sockets of a cluster connection by master
	// address: the consume sockets of the queues on one master share one
	// (nodesock.go).
	nodes map[string]*hubSock
	// slotCheck says a read of the slot map for the members is under way
	// (checkSlots).
	slotCheck bool

	// dmu guards dials: dial goroutines register their results, and
	// Conn.Close releases those the hub never claimed.
	dmu   sync.Mutex
	dials map[*dialResult]struct{}
}

type sockRef struct {
	s   *hubSock
	gen uint64
}

func newMultiPoller(c *Conn) *multiPoller {
	return &multiPoller{c: c, h: c.h, socks: make(map[int]sockRef), buf: make([]byte, 64<<10),
		dials: make(map[*dialResult]struct{}), nodes: make(map[string]*hubSock)}
}

// add registers a channel's store (Kombu's cycle.add) and starts the timers
// with the first one.
func (p *multiPoller) add(st *store) {
	if p.closed {
		return
	}
	p.stores = append(p.stores, st)
	if len(p.timers) > 0 {
		return
	}
	o := p.c.o
	if o.ackEmulation {
		e := p.h.CallRepeatedly(o.restoreInterval, p.maybeRestore)
		p.timers = append(p.timers, e.Cancel)
	}
	if o.healthCheck > 0 {
		e := p.h.CallRepeatedly(o.healthCheck, p.healthCheck)
		p.timers = append(p.timers, e.Cancel)
	}
	e := p.h.CallRepeatedly(max(o.brpopTimeout, time.Second), p.watchdog)
	p.timers = append(p.timers, e.Cancel)
}

// discard unregisters a store (Kombu's cycle.discard).
func (p *multiPoller) discard(st *store) {
	p.stores = slices.DeleteFunc(p.stores, func(x *store) bool { return x == st })
	p.leased = slices.DeleteFunc(p.leased, func(x *store) bool { return x == st })
}

// close stops the timers and closes every socket left. Hub goroutine.
func (p *multiPoller) close() {
	if p.closed {
		return
	}
	p.closed = true
	for _, cancel := range p.timers {
		cancel()
	}
	p.timers = nil
	for _, st := range p.stores {
		st.closeSockets()
	}
	p.stores = nil
	for _, n := range p.nodes {
		n.close()
	}
}

// releaseDials closes the descriptors of dials whose result never reached
// the hub. Called by Conn.Close after every dial goroutine has returned.
func (p *multiPoller) releaseDials() {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	for r := range p.dials {
		r.release()
	}
	clear(p.dials)
}

// maybeRestore is the periodic visibility-timeout sweep (Kombu's
// maybe_restore_messages): it runs for the first channel that consumes.
// The processing lists of dead consumers are turned into unacked records
// at every tick (the throttle applies to the scan of the index only).
func (p *multiPoller) maybeRestore() {
	for _, st := range p.stores {
		if len(st.active) > 0 {
			p.c.sweep.requestConvert()
			p.restoreVisible()
			return
		}
	}
}

// restoreVisible counts a restore_visible call and, on every
// unacked_restore_throttle-th one starting with the first, asks the
// sweeper to scan the unacked index (kombu-spec §1.13).
func (p *multiPoller) restoreVisible() {
	p.restoreCalls++
	if (p.restoreCalls-1)%max(p.c.o.restoreThrottle, 1) != 0 {
		return
	}
	p.c.sweep.request()
}

// healthCheck pings the pub/sub sockets (Kombu's
// maybe_check_subclient_health), and the consume sockets that have no
// command in flight (a full window: only invalidations may come); one whose
// previous ping got no answer is dropped and reconnects.
func (p *multiPoller) healthCheck() {
	for _, st := range p.stores {
		if s := st.listen; s != nil && s.ready && !st.paused {
			s.ping()
		}
		if s := st.cons; s != nil && !s.shared && s.ready && len(s.exp) == 0 {
			s.ping()
		}
	}
	for _, n := range p.nodes {
		if n.ready && len(n.exp) == 0 {
			n.ping()
		}
	}
}

// ping sends the health-check PING, or drops a socket whose last one got
// no answer.
func (s *hubSock) ping() {
	if s.pingOut {
		s.fail(errors.New("no answer to the health-check PING"))
		return
	}
	s.pingOut = true
	s.send(resp.AppendCommand(nil, "PING"), expect{kind: rPing, wait: s.p.c.o.connTimeout + s.p.c.o.sockTimeout})
}

// watchdog drops sockets whose oldest command has waited too long for its
// reply (a network partition gives no EOF): the node sockets of a cluster
// rather than their members. A member whose node refused CLIENT TRACKING
// cannot hear of pushes: its keys are polled here, once per tick.
func (p *multiPoller) watchdog() {
	now := p.h.Now()
	for _, st := range p.stores {
		for _, s := range [...]*hubSock{st.cons, st.listen} {
			if s != nil && s.shared {
				if s.ready && !s.tracking && !st.closed {
					st.markAllDirty()
					st.pump()
				}
				continue
			}
			if s != nil && len(s.exp) > 0 && !(s.kind == kindLISTEN && st.paused) && now.Sub(s.since) > s.exp[0].wait {
				s.fail(fmt.Errorf("no reply within %v", s.exp[0].wait))
			}
		}
	}
	for _, n := range p.nodes {
		if len(n.exp) > 0 && now.Sub(n.since) > n.exp[0].wait {
			n.fail(fmt.Errorf("no reply within %v", n.exp[0].wait))
		}
	}
	p.checkSlots()
}

// sockKind says what a hub socket is for (Kombu's 'BRPOP' and 'LISTEN'):
// the consume socket (the wait and the consume script, pump.go) or the
// PSUBSCRIBE socket.
type sockKind uint8

const (
	kindConsume sockKind = iota + 1
	kindLISTEN
	kindNode // a cluster master's connection, shared by consume sockets (nodesock.go)
)

func (k sockKind) String() string {
	switch k {
	case kindConsume:
		return "CONSUME"
	case kindNode:
		return "NODE"
	}
	return "LISTEN"
}

type sockState uint8

const (
	sockIdle    sockState = iota // no connection; maybe a retry timer
	sockDialing                  // a dial goroutine is running
	sockOpen                     // registered in the hub
	sockClosed                   // released for good
)

// replyKind says what reply a command sent on a hub socket expects.
type replyKind uint8

const (
	rOK       replyKind = iota + 1 // AUTH, SELECT, CLIENT SETNAME: +OK
	rClientID                      // CLIENT ID: an integer
	rHello                         // HELLO 3: a map, or an error before Redis 6
	rTracking                      // CLIENT TRACKING ON: +OK, or an error
	rRegister                      // ZADD of the consumer's lease
	rReady                         // the last handshake reply: SCRIPT LOAD or PING
	rScript                        // EVALSHA of the consume script
	rArm                           // EXISTS re-arming the tracking of keys
	rWait                          // BLMOVE, BRPOPLPUSH or BRPOP
	rPing                          // health-check PING
	rLeave                         // the script that ends the lease on close
)

// expect is one reply a hub socket waits for.
type expect struct {
	kind replyKind
	wait time.Duration // the watchdog's limit
	cmd  *popCmd       // rScript, rWait
	// owner is, on a node socket, the member that sent the command, and
	// ogen its generation then (nil: the node socket's own command).
	owner *hubSock
	ogen  uint64
}

// hubSock is one Redis connection owned by the hub: a non-blocking
// descriptor in the hub's poller, a buffer of commands waiting for
// writability, and an incremental RESP reader fed with whatever bytes
// arrived. go-redis never sees it.
type hubSock struct {
	p     *multiPoller
	st    *store
	kind  sockKind
	state sockState
	fd    int
	gen   uint64
	rd    resp.Reader
	out   []byte
	// writer is set while a writer is registered: only while out holds
	// bytes the kernel did not take.
	writer   bool
	exp      []expect
	since    time.Time // when exp[0] was sent (or became the oldest)
	ready    bool      // the handshake is done
	clientID int64
	// The consume socket's abilities, learnt in the handshake: RESP3 and
	// Redis's invalidation messages (CLIENT TRACKING), and BLMOVE (Redis
	// 6.2; BRPOPLPUSH before).
	tracking bool
	blmove   bool
	pingOut  bool
	backoff  time.Duration
	retry    func() // cancels a pending reconnect timer
	// addr is the node the socket is connected to ("": the configured
	// one); failed says the last connection failed, so a cluster's slot
	// map is read again before the next dial.
	addr   string
	failed bool
	dial   *dialResult

	// shared says a consume socket is a member of a node socket
	// (nodesock.go): node is that node socket while it is attached.
	shared bool
	node   *hubSock
	// A node socket's members, the members whose tracked keys each
	// invalidation goes to (watched), and those that got a reply in the
	// current read burst (touched; a member's own touched flag).
	members []*hubSock
	watched map[string][]*hubSock
	touched []*hubSock
	// touchedFlag marks a member listed in its node's touched.
	touchedFlag bool
}

// newHubSock returns a store's socket of kind. The consume socket of a
// cluster channel's sub-store is a member of its master's node socket
// (nodesock.go) when Redis tracking may be used.
func newHubSock(st *store, kind sockKind) *hubSock {
	s := &hubSock{p: st.c.mp, st: st, kind: kind, fd: -1}
	s.shared = kind == kindConsume && st.group != nil && st.c.topo != nil && !st.o.noTracking
	return s
}

// connect starts a dial goroutine; the hub takes the socket over when its
// result is posted back.
func (s *hubSock) connect() {
	if s.state != sockIdle || s.retry != nil || s.p.closed {
		return
	}
	s.state = sockDialing
	s.gen++
	gen := s.gen
	r := &dialResult{fd: -1}
	s.dial = r
	p := s.p
	p.dmu.Lock()
	p.dials[r] = struct{}{}
	p.dmu.Unlock()
	c := p.c
	slot, refresh, node, addr := 0, s.failed, s.kind == kindNode, s.addr
	if s.st != nil {
		slot = s.st.slot()
	}
	dial := !s.shared
	c.dialWG.Add(1)
	go func() { // owned by the Conn, joined in Close
		defer c.dialWG.Done()
		if node {
			r.addr = addr
		} else {
			r.addr, r.err = c.target(c.ctx, slot, refresh)
		}
		if r.err == nil && dial {
			r.fd, r.err = c.dialFD(c.ctx, r.addr)
		}
		c.h.Post(func() {
			if !r.claimed.CompareAndSwap(false, true) {
				return
			}
			p.dmu.Lock()
			delete(p.dials, r)
			p.dmu.Unlock()
			s.onDialed(gen, r)
		})
	}()
}

// onDialed takes the dialled socket over, or schedules a retry.
func (s *hubSock) onDialed(gen uint64, r *dialResult) {
	if gen != s.gen || s.state != sockDialing {
		if r.err == nil {
			fdClose(r.fd)
		}
		return
	}
	s.dial = nil
	if r.err != nil {
		s.state = sockIdle
		s.p.c.o.log.Warn("redis: cannot connect hub socket", "kind", s.kind, "addr", r.addr, "err", r.err)
		if s.kind == kindNode {
			s.fail(r.err)
			return
		}
		s.failed = true
		s.scheduleRetry()
		return
	}
	if s.shared {
		s.p.attach(s, r.addr) // a member: its master is known, its node socket is shared
		return
	}
	s.fd = r.fd
	s.addr = r.addr
	s.failed = false
	s.state = sockOpen
	p := s.p
	p.gen++
	p.socks[s.fd] = sockRef{s: s, gen: p.gen}
	if err := s.addReader(); err != nil {
		s.fail(err)
		return
	}
	s.handshake()
}

// addReader registers the socket's reader; the callback checks that the
// descriptor still belongs to this registration (generation).
func (s *hubSock) addReader() error {
	p := s.p
	ref := p.socks[s.fd]
	return p.h.AddReader(s.fd, func(fd int, ev hub.Event) {
		if cur, ok := p.socks[fd]; ok && cur == ref {
			s.onReadable()
		}
	})
}

// handshake sends AUTH, SELECT and CLIENT SETNAME as needed, then, on the
// consume socket with ack emulation, HELLO 3 and CLIENT TRACKING ON NOLOOP
// (either may fail: before Redis 6, or when an ACL refuses it, the socket
// stays in RESP2 and polls the keys it does not wait on) and the ZADD of
// the consumer's lease; then CLIENT ID (for CLIENT UNBLOCK), then SCRIPT
// LOAD (consume socket) or PING (LISTEN socket, RESP2, so that pub/sub
// replies are plain arrays), whose reply marks the socket ready.
func (s *hubSock) handshake() {
	o := s.p.c.o
	wait := o.connTimeout + o.sockTimeout
	var b []byte
	var exps []expect
	if o.password != "" {
		if o.username != "" {
			b = resp.AppendCommand(b, "AUTH", o.username, o.password)
		} else {
			b = resp.AppendCommand(b, "AUTH", o.password)
		}
		exps = append(exps, expect{kind: rOK, wait: wait})
	}
	if o.db != 0 {
		b = resp.AppendCommand(b, "SELECT", strconv.Itoa(o.db))
		exps = append(exps, expect{kind: rOK, wait: wait})
	}
	if o.clientName != "" {
		b = resp.AppendCommand(b, "CLIENT", "SETNAME", o.clientName)
		exps = append(exps, expect{kind: rOK, wait: wait})
	}
	s.tracking, s.blmove = false, false
	if s.kind == kindNode {
		// No NOLOOP: the members share the connection, so one member's pop
		// from a key another armed must reach that other member too.
		b = resp.AppendCommand(b, "HELLO", "3")
		exps = append(exps, expect{kind: rHello, wait: wait})
		b = resp.AppendCommand(b, "CLIENT", "TRACKING", "ON", "OPTIN")
		exps = append(exps, expect{kind: rTracking, wait: wait})
	} else if s.kind == kindConsume && o.ackEmulation {
		if !o.noTracking {
			b = resp.AppendCommand(b, "HELLO", "3")
			exps = append(exps, expect{kind: rHello, wait: wait})
			b = resp.AppendCommand(b, "CLIENT", "TRACKING", "ON", "NOLOOP", "OPTIN")
			exps = append(exps, expect{kind: rTracking, wait: wait})
		}
		b = append(b, s.st.registerCmd()...)
		exps = append(exps, expect{kind: rRegister, wait: wait})
		s.st.registered, s.st.dormant = true, false
	}
	b = resp.AppendCommand(b, "CLIENT", "ID")
	exps = append(exps, expect{kind: rClientID, wait: wait})
	if s.kind != kindLISTEN {
		b = resp.AppendCommand(b, "SCRIPT", "LOAD", consumeSrc)
	} else {
		b = resp.AppendCommand(b, "PING")
	}
	exps = append(exps, expect{kind: rReady, wait: wait})
	s.send(b, exps...)
}

// send queues a command (or several) and the replies they expect, and
// writes as much as the socket takes now.
func (s *hubSock) send(cmd []byte, exps ...expect) {
	if s.state != sockOpen {
		return
	}
	if s.shared {
		s.sendShared(cmd, exps)
		return
	}
	if len(s.exp) == 0 {
		s.since = s.p.h.Now()
	}
	s.exp = append(s.exp, exps...)
	s.out = append(s.out, cmd...)
	s.flush()
}

// flush writes the buffered commands; what the kernel does not take waits
// for writability (a writer is registered only while bytes wait).
func (s *hubSock) flush() {
	for len(s.out) > 0 {
		n, err := fdWrite(s.fd, s.out)
		if n > 0 {
			s.out = s.out[:copy(s.out, s.out[n:])]
			continue
		}
		switch {
		case isIntr(err):
			continue
		case isAgain(err):
			if !s.writer {
				s.writer = true
				ref := s.p.socks[s.fd]
				if err := s.p.h.AddWriter(s.fd, func(fd int, ev hub.Event) {
					if cur, ok := s.p.socks[fd]; ok && cur == ref {
						s.flush()
					}
				}); err != nil {
					s.fail(err)
				}
			}
			return
		case err == nil:
			err = io.ErrShortWrite
		}
		s.fail(fmt.Errorf("write: %w", err))
		return
	}
	if s.writer {
		s.writer = false
		s.p.h.RemoveWriter(s.fd)
	}
}

// readBudget bounds what one readiness event reads from a socket: a reply
// of many megabytes is read over several loop turns (the descriptor stays
// readable), so timers and other sockets are served in between.
const readBudget = 1 << 20

// onReadable reads what the kernel has (up to readBudget), feeds the RESP
// reader and handles every complete reply.
func (s *hubSock) onReadable() {
	gen := s.gen
	for read := 0; s.state == sockOpen && gen == s.gen; {
		n, err := fdRead(s.fd, s.p.buf)
		if n > 0 {
			s.rd.Feed(s.p.buf[:n])
			s.parse(gen)
			read += n
			if n < len(s.p.buf) || read >= readBudget {
				break
			}
			continue
		}
		if isIntr(err) {
			continue
		}
		if isAgain(err) {
			break
		}
		if err == nil {
			err = io.EOF
		}
		s.fail(err)
		return
	}
	if s.kind == kindNode {
		s.afterNodeRead() // members that got replies, even if the node failed meanwhile
		return
	}
	if s.state == sockOpen && gen == s.gen {
		s.st.afterRead(s)
	}
}

// parse hands every complete reply to the socket's handler.
func (s *hubSock) parse(gen uint64) {
	for s.state == sockOpen && gen == s.gen {
		v, ok, err := s.rd.Next()
		if err != nil {
			s.fail(err)
			return
		}
		if !ok {
			return
		}
		if s.kind == kindLISTEN && s.st.onPubsub(s, v) {
			continue
		}
		if v.Kind == resp.Push {
			switch s.kind {
			case kindConsume:
				s.st.onInvalidate(v)
			case kindNode:
				s.onNodePush(v)
			}
			continue
		}
		if len(s.exp) == 0 {
			s.fail(fmt.Errorf("unexpected reply %s", v.String()))
			return
		}
		e := s.exp[0]
		s.exp = s.exp[:copy(s.exp, s.exp[1:])]
		s.since = s.p.h.Now()
		if e.owner != nil {
			s.dispatch(e, v)
			continue
		}
		s.onReply(e, v)
	}
}

// onReply handles the reply to one command.
func (s *hubSock) onReply(e expect, v resp.Value) {
	switch e.kind {
	case rHello, rTracking, rWait, rScript:
	default:
		if v.Kind == resp.Error {
			s.fail(fmt.Errorf("%s", v.Err()))
			return
		}
	}
	switch e.kind {
	case rOK, rRegister:
	case rClientID:
		s.clientID = v.Int
	case rHello:
		if v.Kind == resp.Error {
			s.p.c.o.log.Warn("redis: HELLO 3 refused; consuming without invalidation messages "+
				"(keys other than the one waited on are polled once per brpop_timeout)", "err", v.Err())
			return
		}
		ver, _ := v.Lookup("version")
		s.blmove = versionAtLeast(string(ver.Str), 6, 2)
	case rTracking:
		if v.Kind == resp.Error {
			s.p.c.o.log.Warn("redis: CLIENT TRACKING refused; consuming without invalidation messages "+
				"(keys other than the one waited on are polled once per brpop_timeout)", "err", v.Err())
			return
		}
		s.tracking = true
	case rReady:
		s.ready = true
		s.backoff = 0
		if s.kind == kindNode {
			s.onNodeReady()
			return
		}
		s.st.onReady(s)
	case rPing:
		s.pingOut = false
	case rScript:
		s.st.onScript(s, e.cmd, v)
	case rArm:
		s.st.onArm(e.cmd, v)
	case rWait:
		s.st.onWait(s, e.cmd, v)
	case rLeave:
		s.st.registered = false
	}
}

// versionAtLeast reports whether a Redis version "major.minor.patch" is at
// least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// fail drops the connection: the descriptor leaves the hub before it is
// closed, every expected reply is given up (the consume socket remembers
// what was in flight for its recovery script), and a reconnect is
// scheduled while the socket is still needed.
func (s *hubSock) fail(err error) { s.lose(err, true) }

// lose is fail, logged or not (the members of a node socket that failed
// are not logged one by one). A node socket that fails is closed for good
// and its members fail with it (failMembers); it is never redialled
// itself.
func (s *hubSock) lose(err error, log bool) {
	if s.kind == kindNode {
		if s.state == sockClosed {
			return
		}
		s.p.c.o.log.Warn("redis: hub socket lost", "kind", s.kind, "addr", s.addr, "members", len(s.members), "err", err)
		s.close()
		s.failMembers(err)
		return
	}
	if s.state != sockOpen {
		return
	}
	if log {
		s.p.c.o.log.Warn("redis: hub socket lost", "kind", s.kind, "addr", s.addr, "err", err)
	}
	s.failed = true
	s.drop()
	s.st.onLost(s)
	s.scheduleRetry()
}

// drop closes the socket and forgets its state.
func (s *hubSock) drop() {
	s.detach()
	if s.state == sockOpen && s.fd >= 0 {
		delete(s.p.socks, s.fd)
		s.p.h.Remove(s.fd)
		fdClose(s.fd)
	}
	s.fd = -1
	s.gen++
	s.state = sockIdle
	s.writer = false
	s.ready = false
	s.pingOut = false
	s.out = s.out[:0]
	if s.kind == kindConsume {
		s.st.onConsumeLost(s.exp)
		s.st.releaseReserved()
	}
	s.exp = s.exp[:0]
	s.rd.Reset()
	if s.dial != nil {
		// A dial still running: its result is closed when it arrives.
		s.dial = nil
	}
}

// scheduleRetry reconnects after a backoff (100 ms doubling to 5 s; 1 s in a
// cluster: maxBackoff), on a
// hub timer, if the socket is still needed then.
func (s *hubSock) scheduleRetry() {
	if s.state == sockClosed || s.p.closed || s.retry != nil || s.kind == kindNode {
		return
	}
	s.backoff = min(max(2*s.backoff, 100*time.Millisecond), s.p.c.o.maxBackoff())
	e := s.p.h.CallLater(s.backoff, func() {
		s.retry = nil
		if s.st.needs(s.kind) {
			s.connect()
		}
	})
	s.retry = e.Cancel
}

// close releases the socket for good.
func (s *hubSock) close() {
	if s.retry != nil {
		s.retry()
		s.retry = nil
	}
	s.drop()
	s.state = sockClosed
	if s.kind == kindNode && s.p.nodes[s.addr] == s {
		delete(s.p.nodes, s.addr)
	}
}
