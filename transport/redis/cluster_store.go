package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// clusterStore is the channel.Store of a channel on a Redis Cluster
// (cluster.go). Requests (declarations, Publish, Get, size, purge) go
// through the channel's own store, base, over go-redis's cluster client;
// fanout queues are consumed by base's PSUBSCRIBE socket. Every list queue
// the channel consumes has a sub-store of its own: a store whose record
// keys are the queue's (forQueue), with its consume socket on the master
// of the queue's slot, running the single-node protocol (pump.go) on that
// one queue. Settlements go to the sub-store of the message's queue. The
// stores share the channel's prefetch window (store.room counts the
// others' messages in flight).
//
// Hub goroutine only, apart from the request methods, which are base's.
type clusterStore struct {
	base *store
	subs map[string]*store
	all  []*store // base, then the sub-stores in creation order
	// kicked says a Resume of every store is posted (kick).
	kicked bool
}

var (
	_ channel.Store       = (*clusterStore)(nil)
	_ channel.NoAckTaker  = (*clusterStore)(nil)
	_ channel.CloseWaiter = (*clusterStore)(nil)
)

func newClusterStore(base *store) *clusterStore {
	cs := &clusterStore{base: base, subs: make(map[string]*store), all: []*store{base}}
	base.group = cs
	return cs
}

// sub returns the sub-store of queue, creating it (and registering it with
// the poller) the first time.
func (cs *clusterStore) sub(queue string) *store {
	if st, ok := cs.subs[queue]; ok {
		return st
	}
	b := cs.base
	st := newStoreFor(b.c, b.o.forQueue(queue))
	st.ch, st.group = b.ch, cs
	cs.subs[queue] = st
	cs.all = append(cs.all, st)
	b.c.mp.add(st)
	return st
}

// NewQueue, HasQueue, Size, Purge, DeleteQueue, Table, Bind, Put,
// PutFanout and Get are base's: each touches one queue's slot, or plain
// keys.
func (cs *clusterStore) NewQueue(ctx context.Context, q transport.Queue) error {
	return cs.base.NewQueue(ctx, q)
}

func (cs *clusterStore) HasQueue(ctx context.Context, queue string) (bool, error) {
	return cs.base.HasQueue(ctx, queue)
}

func (cs *clusterStore) Size(ctx context.Context, queue string) (int, error) {
	return cs.base.Size(ctx, queue)
}

func (cs *clusterStore) Purge(ctx context.Context, queue string) (int, error) {
	return cs.base.Purge(ctx, queue)
}

func (cs *clusterStore) DeleteQueue(ctx context.Context, queue string, bindings []channel.Binding, ifUnused bool) (int, error) {
	return cs.base.DeleteQueue(ctx, queue, bindings, ifUnused)
}

func (cs *clusterStore) Table(ctx context.Context, exchange string) ([]channel.Row, error) {
	return cs.base.Table(ctx, exchange)
}

func (cs *clusterStore) Bind(ctx context.Context, b channel.Binding) error {
	return cs.base.Bind(ctx, b)
}

func (cs *clusterStore) Put(ctx context.Context, queue string, m *transport.Message) error {
	return cs.base.Put(ctx, queue, m)
}

func (cs *clusterStore) PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error) {
	return cs.base.PutFanout(ctx, exchange, routingKey, m)
}

func (cs *clusterStore) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	return cs.base.Get(ctx, queue, noAck)
}

// Consuming hands each consumed list queue to its sub-store and the fanout
// queues to base.
func (cs *clusterStore) Consuming(queues []string) {
	b := cs.base
	if b.closed {
		return
	}
	var lists, fan []string
	for _, q := range queues {
		if _, ok := b.c.t.fanoutOf(q); ok {
			fan = append(fan, q)
		} else {
			lists = append(lists, q)
		}
	}
	b.c.noteSwept(queues)
	b.Consuming(fan)
	for q, st := range cs.subs {
		if !slices.Contains(lists, q) && len(st.active) > 0 {
			st.Consuming(nil)
		}
	}
	for _, q := range lists {
		cs.sub(q).Consuming([]string{q})
	}
}

// Resume resumes every store: they share the window.
func (cs *clusterStore) Resume() {
	for _, st := range cs.all {
		st.Resume()
	}
}

// Settle hands each settlement to the sub-store of its message's queue,
// whose keys hold the record. A settlement without its message (a tag this
// channel does not hold) cannot be placed in a cluster: it is logged and
// left to the visibility timeout.
func (cs *clusterStore) Settle(batch []channel.Settlement) error {
	var order []*store
	parts := make(map[*store][]channel.Settlement)
	for _, s := range batch {
		if s.Message == nil || s.Message.DeliveryInfo.Queue == "" {
			cs.base.o.log.Warn("redis: cluster: a settlement for a delivery tag this channel does not hold "+
				"names no queue; its record is left to the visibility timeout", "delivery_tag", s.Tag)
			continue
		}
		st := cs.sub(s.Message.DeliveryInfo.Queue)
		if _, ok := parts[st]; !ok {
			order = append(order, st)
		}
		parts[st] = append(parts[st], s)
	}
	var errs []error
	for _, st := range order {
		errs = append(errs, st.Settle(parts[st]))
	}
	cs.kick() // an ack frees a slot of the shared window
	return errors.Join(errs...)
}

// unblockIdle ends the blocked waits of the stores other than st: each
// holds a slot of the shared window that st needs for the messages it
// knows of. Their null replies free the slots (kick), and they send no new
// wait while st wants room (store.othersWantRoom).
func (cs *clusterStore) unblockIdle(st *store) {
	for _, o := range cs.all {
		if o != st && o.blocked() {
			o.unblock()
		}
	}
}

// kick resumes every store soon (once however many ask before it runs):
// a slot of the shared window freed by one store may be another's to use,
// and the channel only resumes a window it saw full.
func (cs *clusterStore) kick() {
	if cs.kicked {
		return
	}
	cs.kicked = true
	cs.base.c.h.CallSoon(func() {
		cs.kicked = false
		if !cs.base.closed {
			cs.Resume()
		}
	})
}

// TakenNoAck drops the record of the message a store is handing over to a
// no-ack consumer: the record is under the keys of the queue it is handed
// over for.
func (cs *clusterStore) TakenNoAck(m *transport.Message) {
	for _, st := range cs.all {
		if st.handing {
			st.handing = false
			cs.sub(st.handingQueue).ack(m.DeliveryInfo.DeliveryTag)
			return
		}
	}
}

// Close closes the sub-stores, then base.
func (cs *clusterStore) Close() error {
	var errs []error
	for _, st := range cs.all[1:] {
		errs = append(errs, st.Close())
	}
	errs = append(errs, cs.base.Close())
	return errors.Join(errs...)
}

// WaitClose waits for the connection's executor (shared by every store).
func (cs *clusterStore) WaitClose() error { return cs.base.WaitClose() }

// othersHeld counts what the group's other stores hold of the shared
// prefetch window (see hubState.room).
func (cs *clusterStore) othersHeld(st *store) int {
	n := 0
	for _, o := range cs.all {
		if o != st {
			n += o.inflight + len(o.backlog) + o.held() + o.execOut
		}
	}
	return n
}

// putWait stores a message with LPUSH followed by WAIT on the same node
// connection (Options.PublishWaitReplicas), plus the PEXPIREs of x-expires.
func (st *store) putWait(ctx context.Context, key string, env []byte, expire []string, ttl time.Duration) (err error) {
	var nc *goredis.Client
	if t := st.c.topo; t != nil {
		// The master of the key's slot, from this package's own slot map
		// (go-redis's may lag a failover for long): read again after a
		// failure.
		addr, err := t.masterOf(ctx, slotOf(key), false)
		if err == nil {
			nc, err = t.node(addr)
		}
		if err != nil {
			t.invalidate()
			return connError("publish", err)
		}
		defer func() {
			if err != nil {
				t.invalidate()
			}
		}()
	} else if c, ok := st.c.rdb.(*goredis.Client); ok {
		nc = c
	} else {
		return fmt.Errorf("redis: publish_wait_replicas: unexpected client %T", st.c.rdb)
	}
	var wait *goredis.Cmd
	_, err = nc.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.LPush(ctx, key, env)
		for _, k := range expire {
			p.PExpire(ctx, k, ttl)
		}
		wait = p.Do(ctx, "WAIT", st.o.waitReplicas, st.o.waitArg())
		return nil
	})
	if err != nil {
		return connError("publish", err)
	}
	n, werr := wait.Int64()
	if werr != nil {
		return connError("publish", werr)
	}
	return st.o.waitReplicasOn(n)
}
