package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/internal/hashslot"
)

// Redis Cluster (redis+cluster://). Kombu has no cluster layout: its
// unacked hash and index are one key each, and its pop-and-record steps
// touch them together with the queue's lists, which a cluster refuses
// (CROSSSLOT) unless every key hashes to one slot. The layout here is
// therefore this package's own, and Python Kombu cannot share it:
//
//   - every key of queue Q carries the hash tag {Q}: its lists "{Q}" and
//     "{Q}<sep><step>", and its own unacked records "{Q}:unacked" (hash)
//     and "{Q}:unacked_index" (zset), sweep mutex "{Q}:unacked_mutex",
//     consumer registry "{Q}:unacked:consumers" and the processing lists
//     and delivering hashes of its consumers; global_keyprefix comes
//     first. So each queue lives in one slot, and its pop-and-record
//     script, acks, restores and sweep stay single-slot and atomic, while
//     different queues spread over the masters;
//   - binding sets (_kombu.binding.<exchange>) are plain keys, wherever
//     their slot puts them; fanout uses PUBLISH and PSUBSCRIBE, which a
//     cluster forwards to every node (sharded SSUBSCRIBE takes no
//     patterns, which fanout_patterns needs);
//   - a restore puts the message back into the queue whose records held
//     it (Kombu routes it through its exchange again, which in a cluster
//     could not be one atomic step with the record's deletion).
//
// Each queue a channel consumes gets a sub-store of the channel
// (clusterStore) whose consume socket is a member of the node socket of
// the master that owns the queue's slot (nodesock.go): one connection per
// master for every queue of the connection. A member that fails (the
// master died, the slot moved: MOVED, ASK) joins, with backoff, the node
// socket of the master the cluster names then.

// slotOf is the cluster hash slot of a key (internal/hashslot).
func slotOf(key string) int { return hashslot.Slot(key) }

// clusterQueueKey is the list key of a queue's priority step in cluster
// mode (unprefixed): the queue name as a hash tag.
func clusterQueueKey(queue, sep string, step int) string {
	if step != 0 {
		return "{" + queue + "}" + sep + strconv.Itoa(step)
	}
	return "{" + queue + "}"
}

// forQueue returns the options whose record keys are queue's: in cluster
// mode a copy whose unacked keys carry the queue's hash tag (cached); on a
// single node, o itself (Kombu's one unacked hash).
func (o *options) forQueue(queue string) *options {
	if !o.cluster || o.queue == queue {
		return o
	}
	if v, ok := o.qcache.Load(queue); ok {
		return v.(*options)
	}
	base := o
	if o.root != nil {
		base = o.root
	}
	q := *base
	q.root = base
	tag := "{" + queue + "}:"
	q.queue = queue
	q.unackedKey = tag + base.unackedKey
	q.unackedIndexKey = tag + base.unackedIndexKey
	q.unackedMutexKey = tag + base.unackedMutexKey
	v, _ := o.qcache.LoadOrStore(queue, &q)
	return v.(*options)
}

// clusterTopology asks the cluster for the master of every slot (CLUSTER
// SLOTS) through the first node that answers: the masters it knew last,
// then the seeds. Off the hub (dial goroutines, the sweeper).
type clusterTopology struct {
	o *options
	// mu guards slots and known: dial goroutines read and refresh them.
	mu      sync.Mutex
	slots   []slotRange
	known   []string
	loaded  time.Time // when slots were read
	clients map[string]*goredis.Client
	closed  bool
}

// reloadEvery is how old a slot map must be before reload reads it again.
const reloadEvery = 250 * time.Millisecond

type slotRange struct {
	from, to int
	master   string
}

func newClusterTopology(o *options) *clusterTopology {
	return &clusterTopology{o: o, clients: make(map[string]*goredis.Client)}
}

// node returns a go-redis client of one node (a pool of its own), for the
// commands that must reach that node: CLIENT UNBLOCK of a hub socket,
// CLUSTER SLOTS.
func (t *clusterTopology) node(addr string) (*goredis.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errClosedConn
	}
	if c, ok := t.clients[addr]; ok {
		return c, nil
	}
	o := t.o
	c := goredis.NewClient(&goredis.Options{
		Addr: addr, Username: o.username, Password: o.password, TLSConfig: o.tls, ClientName: o.clientName,
		DialTimeout: o.connTimeout, ReadTimeout: o.sockTimeout, WriteTimeout: o.sockTimeout,
		PoolSize: 2, MaxRetries: -1, Protocol: 2, DisableIdentity: true, ContextTimeoutEnabled: true,
	})
	t.clients[addr] = c
	return c, nil
}

// masterOf returns the address of the master serving slot, reloading the
// slot map first when refresh is set or nothing is known yet.
func (t *clusterTopology) masterOf(ctx context.Context, slot int, refresh bool) (string, error) {
	if !refresh {
		t.mu.Lock()
		for _, r := range t.slots {
			if slot >= r.from && slot <= r.to {
				t.mu.Unlock()
				return r.master, nil
			}
		}
		t.mu.Unlock()
	}
	if err := t.reload(ctx); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.slots {
		if slot >= r.from && slot <= r.to {
			return r.master, nil
		}
	}
	return "", fmt.Errorf("redis: cluster: no master serves slot %d", slot)
}

// reload reads CLUSTER SLOTS from the first node that answers; a map read
// less than reloadEvery ago is kept (the sockets of many queues redial at
// once after a failover).
func (t *clusterTopology) reload(ctx context.Context) error {
	t.mu.Lock()
	if t.slots != nil && time.Since(t.loaded) < reloadEvery {
		t.mu.Unlock()
		return nil
	}
	try := append(append([]string(nil), t.known...), t.o.seeds...)
	t.mu.Unlock()
	var errs []error
	seen := map[string]bool{}
	for _, addr := range try {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		c, err := t.node(addr)
		if err != nil {
			return err
		}
		qctx, cancel := context.WithTimeout(ctx, t.o.connTimeout)
		slots, err := c.ClusterSlots(qctx).Result()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		var rs []slotRange
		var known []string
		for _, s := range slots {
			if len(s.Nodes) == 0 {
				continue
			}
			m := s.Nodes[0].Addr
			if h, p, err := net.SplitHostPort(m); err == nil && h == "" {
				m = net.JoinHostPort("127.0.0.1", p)
			}
			rs = append(rs, slotRange{from: s.Start, to: s.End, master: m})
			for _, n := range s.Nodes {
				known = append(known, n.Addr)
			}
		}
		t.mu.Lock()
		t.slots, t.known, t.loaded = rs, known, time.Now()
		t.mu.Unlock()
		return nil
	}
	return fmt.Errorf("redis: cluster: no node answers CLUSTER SLOTS: %w", errors.Join(errs...))
}

// maxBackoff caps the hub sockets' reconnect backoff: 5 s on one node; 1 s
// in a cluster, where a failover moves a queue to a replica within
// seconds and its socket should follow without waiting out a long backoff
// (the slot map reads that redials cost are shared: reload).
func (o *options) maxBackoff() time.Duration {
	if o.cluster {
		return time.Second
	}
	return 5 * time.Second
}

// invalidate forgets the slot map: the next masterOf reads it again.
func (t *clusterTopology) invalidate() {
	t.mu.Lock()
	t.slots = nil
	t.mu.Unlock()
}

// close closes the node clients.
func (t *clusterTopology) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, c := range t.clients {
		c.Close()
	}
	clear(t.clients)
}

// newClusterClient is the go-redis client of a cluster connection: every
// request/response command goes through it, routed by slot.
func (o *options) newClusterClient() *goredis.ClusterClient {
	return goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs:                 o.seeds,
		Username:              o.username,
		Password:              o.password,
		ClientName:            o.clientName,
		TLSConfig:             o.tls,
		DialTimeout:           o.connTimeout,
		ReadTimeout:           o.sockTimeout,
		WriteTimeout:          o.sockTimeout,
		PoolSize:              o.maxConns,
		MaxRetries:            o.maxRetries,
		MaxRedirects:          8,
		Protocol:              2,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
	})
}

// waitReplicasOn runs WAIT on the node client that stored a write, when
// Options.PublishWaitReplicas asks for it: fewer replicas than asked
// within the timeout is an error.
func (o *options) waitReplicasOn(got int64) error {
	if got < int64(o.waitReplicas) {
		return fmt.Errorf("redis: publish: %d of %d replicas acknowledged the message within %v "+
			"(it may still be stored: publish again and accept a duplicate)", got, o.waitReplicas, o.waitTimeout)
	}
	return nil
}

// waitArg is WAIT's timeout argument in milliseconds.
func (o *options) waitArg() int64 { return max(o.waitTimeout.Milliseconds(), 1) }

// noteSwept adds queues to those the connection's sweep covers in a
// cluster (every queue it ever consumed). Hub goroutine; the sweeper reads
// them (sweptQueues), hence the connection's qmu.
func (c *Conn) noteSwept(queues []string) {
	if !c.o.cluster || !c.o.ackEmulation {
		return
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	for _, q := range queues {
		if !slices.Contains(c.swept, q) {
			c.swept = append(c.swept, q)
		}
	}
}

// sweptQueues returns a copy of the queues the sweep covers.
func (c *Conn) sweptQueues() []string {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return slices.Clone(c.swept)
}
