package redis

import (
	"fmt"
	"slices"

	"github.com/kombu-go/kombu/internal/resp"
)

// One consume socket per master (Redis Cluster with CLIENT TRACKING). The
// queues of a cluster live in different slots, and a blocking command
// waits on the keys of one slot only, so a blocking socket per master
// cannot wait for several queues. Instead, on a cluster, the consume
// sockets never block: every consumed key is tracked (CLIENT TRACKING,
// OPTIN), a push to it brings Redis's invalidation, and the consume script
// pops and records what came. The sub-stores of every channel of the
// connection whose queues live on one master then share one connection to
// it, the node socket:
//
//   - a member is the consume socket of one sub-store (a hubSock with node
//     set and no descriptor of its own). It keeps its own expected replies
//     in order; its commands go out on the node socket, whose expects name
//     the member (owner) and its generation;
//   - the node socket dispatches each reply to its owner, or drops it when
//     the owner left meanwhile (the owner counted it lost: onConsumeLost,
//     whose recovery script finds what it handed over);
//   - an invalidation goes to the members that armed the key (watched);
//   - when the node socket fails, every member fails with it and redials
//     after its backoff: each reads the slot map again and joins the node
//     socket of its queue's master, which is dialled once for all of them;
//   - the health check and the watchdog run on node sockets, not on members.
//
// The node socket is never redialled itself: it is dialled when its first
// member joins and closed when its last member leaves. Hub goroutine only.

// nodeFor returns the node socket of addr, dialling it the first time.
func (p *multiPoller) nodeFor(addr string) *hubSock {
	if n, ok := p.nodes[addr]; ok {
		return n
	}
	n := &hubSock{p: p, kind: kindNode, fd: -1, addr: addr}
	p.nodes[addr] = n
	n.connect()
	return n
}

// attach makes the member m (dialling, its queue's master resolved to
// addr) a member of that master's node socket; it is ready at once when
// the node socket is.
func (p *multiPoller) attach(m *hubSock, addr string) {
	n := p.nodeFor(addr)
	m.node = n
	m.addr = addr
	n.members = append(n.members, m)
	if n.ready {
		n.join(m)
	}
}

// join makes a member ready: it shares the node socket's abilities and
// runs its store's first commands.
func (n *hubSock) join(m *hubSock) {
	m.state = sockOpen
	m.ready = true
	m.tracking, m.blmove = n.tracking, false
	m.clientID = n.clientID
	m.failed = false
	m.backoff = 0
	m.st.onReady(m)
}

// onNodeReady runs when the node socket's handshake is done: its members
// join.
func (n *hubSock) onNodeReady() {
	for _, m := range slices.Clone(n.members) {
		if m.node == n && m.state == sockDialing {
			n.join(m)
		}
	}
}

// detach takes m out of its node socket; the node socket closes when its
// last member left.
func (m *hubSock) detach() {
	n := m.node
	if n == nil {
		return
	}
	m.node = nil
	n.members = slices.DeleteFunc(n.members, func(x *hubSock) bool { return x == m })
	if len(n.members) == 0 {
		n.close()
	}
}

// sendShared queues a member's commands on its node socket; each expected
// reply names the member and its generation.
func (m *hubSock) sendShared(cmd []byte, exps []expect) {
	n := m.node
	if n == nil || n.state != sockOpen {
		return
	}
	m.exp = append(m.exp, exps...)
	if len(n.exp) == 0 {
		n.since = n.p.h.Now() // the watchdog times the node socket, not its members
	}
	for _, e := range exps {
		n.exp = append(n.exp, expect{kind: e.kind, wait: e.wait, owner: m, ogen: m.gen})
	}
	n.out = append(n.out, cmd...)
	m.out = cmd[:0] // the buffer the member's next command is built in
	n.flush()
}

// dispatch hands a reply the node socket read to the member that sent the
// command, unless that member left (then the reply is dropped: the member
// counted the command lost when it left).
func (n *hubSock) dispatch(e expect, v resp.Value) {
	m := e.owner
	if m.node != n || m.gen != e.ogen || len(m.exp) == 0 {
		return
	}
	me := m.exp[0]
	m.exp = m.exp[:copy(m.exp, m.exp[1:])]
	if !m.touchedFlag {
		m.touchedFlag = true
		n.touched = append(n.touched, m)
	}
	m.onReply(me, v)
}

// afterNodeRead lets every member that got a reply in the last read burst
// send its next command.
func (n *hubSock) afterNodeRead() {
	ms := n.touched
	n.touched = n.touched[:0]
	for _, m := range ms {
		m.touchedFlag = false
		if m.node == n && m.state == sockOpen {
			m.st.afterRead(m)
		}
	}
}

// watch notes that member m armed the tracking of keys: their next
// invalidation goes to m.
func (n *hubSock) watch(m *hubSock, keys []string) {
	if n.watched == nil {
		n.watched = make(map[string][]*hubSock)
	}
	for _, k := range keys {
		if ms := n.watched[k]; !slices.Contains(ms, m) {
			n.watched[k] = append(ms, m)
		}
	}
}

// onNodePush handles an invalidation on the node socket: each key goes to
// the members that armed it (Redis tracks a key until its next
// invalidation, so the key is forgotten then); a null one (FLUSHALL) makes
// every member read all its keys again.
func (n *hubSock) onNodePush(v resp.Value) {
	a := v.Array()
	if len(a) < 2 || string(a[0].Str) != "invalidate" {
		return
	}
	if a[1].IsNull() {
		clear(n.watched)
		for _, m := range slices.Clone(n.members) {
			if m.node == n && m.ready {
				m.st.invalidated(nil, true)
			}
		}
		return
	}
	var order []*hubSock
	var keys map[*hubSock][]string
	for _, k := range a[1].Array() {
		key := string(k.Str)
		for _, m := range n.watched[key] {
			if keys == nil {
				keys = make(map[*hubSock][]string)
			}
			if _, ok := keys[m]; !ok {
				order = append(order, m)
			}
			keys[m] = append(keys[m], key)
		}
		delete(n.watched, key)
	}
	for _, m := range order {
		if m.node == n && m.ready {
			m.st.invalidated(keys[m], false)
		}
	}
}

// failMembers fails every member of a node socket that failed; each
// redials after its own backoff. Only the node socket's failure is logged.
func (n *hubSock) failMembers(err error) {
	ms := slices.Clone(n.members)
	n.members = n.members[:0]
	for _, m := range ms {
		if m.node != n {
			continue
		}
		if m.state == sockOpen {
			m.lose(err, false)
			continue
		}
		m.drop() // joined, not ready yet
		m.failed = true
		m.scheduleRetry()
	}
}

// checkSlots reads the cluster's slot map again (at most once per
// watchdog tick, off the hub) and moves every member whose queue's slot
// now belongs to another master: a member that does not wait learns of a
// moved slot from no reply (a push to the queue goes to the new master,
// which sends this socket no invalidation), so without this it would sit
// on the old master until its next command failed.
func (p *multiPoller) checkSlots() {
	if len(p.nodes) == 0 || p.slotCheck || p.closed {
		return
	}
	t, c := p.c.topo, p.c
	type member struct {
		m    *hubSock
		slot int
		addr string
	}
	var ms []member
	for _, n := range p.nodes {
		for _, m := range n.members {
			if m.state == sockOpen {
				ms = append(ms, member{m: m, slot: m.st.slot(), addr: n.addr})
			}
		}
	}
	if len(ms) == 0 {
		return
	}
	p.slotCheck = true
	c.dialWG.Add(1)
	go func() { // owned by the Conn, joined in Close
		defer c.dialWG.Done()
		moved := make([]bool, len(ms))
		err := t.reload(c.ctx)
		if err == nil {
			for i, x := range ms {
				addr, err := t.masterOf(c.ctx, x.slot, false)
				moved[i] = err == nil && addr != x.addr
			}
		}
		c.h.Post(func() {
			p.slotCheck = false
			for i, x := range ms {
				if moved[i] && x.m.node != nil && x.m.node.addr == x.addr && x.m.state == sockOpen {
					x.m.fail(fmt.Errorf("slot %d moved away from %s", x.slot, x.addr))
				}
			}
		})
	}()
}
