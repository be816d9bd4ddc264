package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/internal/resp"
	"github.com/kombu-go/kombu/transport"
)

// PublishBatch on a Redis Cluster, and with publish_wait_replicas: one
// pipeline per node instead of one round trip per message.
//
// The batch is routed as Publish routes each message (binding tables read
// once per exchange, fanout by PUBLISH, x-expires by PEXPIRE of the
// queue's step keys, a delivery tag per stored copy), into a list of
// commands (nodeOp) that keeps the envelopes for a second attempt. Each
// round groups the commands still to do by the master of their key's slot
// (this package's slot map, clusterTopology), writes every node's pipeline
// on a pubConn of that node (each ends with WAIT when publish_wait_replicas
// asks for it), then reads the nodes' replies in turn, so that the masters
// work at the same time without a goroutine per node. A queue's keys share
// one slot, so its messages go to one node, in batch order.
//
// What a round leaves undone goes again in the next one, up to
// nodeRounds: commands answered MOVED (to the node named, and the slot map
// is read again), ASK (ASKING then the command, to the node named),
// TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN or READONLY (after a pause),
// and every command of a node whose connection failed before its reply
// was read, or, with WAIT, before WAIT's reply was: those may have been
// stored, so a retry can store a message twice (at least once, as with
// Publish). Any other error reply, and fewer replicas than asked within
// publish_wait_timeout (the messages may be stored), fail those commands
// without a retry.

// nodeRounds bounds the rounds of a batch; with the pauses of
// nodePause between rounds that need one, about 3.5 s, the time a cluster
// with a short cluster-node-timeout takes to promote a replica.
const nodeRounds = 8

// nodePause is the pause before round r (1 and more) when the last round
// met a connection failure or a cluster that was not ready: 50 ms
// doubling to 1 s.
func nodePause(r int) time.Duration { return min(50*time.Millisecond<<(r-1), time.Second) }

type opKind uint8

const (
	opPush    opKind = iota // LPUSH key envelope: one stored copy of a message
	opExpire                // PEXPIRE key ms (x-expires)
	opPublish               // PUBLISH channel envelope (fanout)
)

// nodeOp is one command of a batch.
type nodeOp struct {
	kind     opKind
	done     bool
	msg      int    // the request's index in the batch
	key      string // prefixed key, or the PUBLISH channel
	queue    string // opPush: the queue, for error messages
	from, to int    // the envelope: nodeBatch.envs[from:to]
	ms       int64  // opExpire
	ask      string // the node an ASK named: ASKING first, there
	err      error  // why the last attempt failed (nil: not tried yet)
	final    bool   // err is final: no retry
}

// nodeBatch is one PublishBatch on the per-node path.
type nodeBatch struct {
	c     *Conn
	o     *options
	total int // messages in the batch
	ops   []nodeOp
	envs  []byte
	// masters caches the master of each slot for this batch; a MOVED
	// reply overrides it.
	masters map[int]string
	pause   bool // the next round waits nodePause first
}

// nodeRun is the pipeline of one node in one round.
type nodeRun struct {
	addr string
	ops  []int // indexes into nodeBatch.ops, in batch order
	pc   *pubConn
	err  error // the connection failed: replies from ops[read:] are unknown
	// stale: the node answered READONLY, it is a replica now; its
	// connection is not kept for another batch.
	stale bool
	stop  func()
}

// publishNodes is PublishBatch on a cluster or with publish_wait_replicas.
func (ch *Channel) publishNodes(ctx context.Context, reqs []PublishRequest) error {
	st := ch.st
	state := ch.vc.State()
	tables, err := st.bindingTables(ctx, reqs, state)
	if err != nil {
		return err
	}
	b := nodeBatches.Get().(*nodeBatch)
	defer b.free()
	b.c, b.o, b.total = st.c, st.o, len(reqs)
	if err := b.route(st, reqs, state, tables); err != nil {
		return err
	}
	for r := 0; r < nodeRounds; r++ {
		if err := ctx.Err(); err != nil {
			return b.result(err)
		}
		if r > 0 && b.pause {
			t := time.NewTimer(nodePause(r))
			select {
			case <-ctx.Done():
				t.Stop()
				return b.result(ctx.Err())
			case <-t.C:
			}
		}
		b.pause = false
		runs, err := b.plan(ctx)
		if err != nil {
			return err
		}
		if len(runs) == 0 && !b.pause {
			break // all done, or failed for good
		}
		if err := b.round(ctx, runs); err != nil {
			return err
		}
	}
	return b.result(nil)
}

// nodeBatches keeps nodeBatches for the next batch: growing the envelopes'
// buffer from nothing for every batch took a third of the CPU time of
// PublishBatch in BenchmarkClusterPublishBatchVsPipeline.
var nodeBatches = sync.Pool{New: func() any { return &nodeBatch{masters: make(map[int]string)} }}

// free empties b, keeping its buffers up to pubRetain bytes of envelopes,
// and puts it back in nodeBatches.
func (b *nodeBatch) free() {
	if cap(b.envs) > pubRetain {
		b.envs = nil
	}
	clear(b.ops) // their strings and errors
	clear(b.masters)
	*b = nodeBatch{ops: b.ops[:0], envs: b.envs[:0], masters: b.masters}
	nodeBatches.Put(b)
}

// bindingTables reads the binding table of every non-fanout exchange the
// batch names, once each, in one pipeline (SMEMBERS, through go-redis,
// which sends each to its slot's node).
func (st *store) bindingTables(ctx context.Context, reqs []PublishRequest, state *channel.State) (map[string][]channel.Row, error) {
	var names []string
	for _, r := range reqs {
		if r.Message == nil {
			return nil, errors.New("redis: publish of a nil message")
		}
		if r.Exchange != "" && state.Typeof(r.Exchange) != transport.Fanout && !slices.Contains(names, r.Exchange) {
			names = append(names, r.Exchange)
		}
	}
	tables := make(map[string][]channel.Row, len(names))
	if len(names) == 0 {
		return tables, nil
	}
	cmds := make([]*goredis.StringSliceCmd, len(names))
	_, err := st.c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.SMembers(ctx, st.o.bindingKey(n))
		}
		return nil
	})
	if err != nil {
		return nil, connError("publish", err)
	}
	for i, n := range names {
		tables[n] = parseTable(cmds[i].Val(), st.o.sep)
	}
	return tables, nil
}

// route turns the batch into b.ops, encoding each stored copy's envelope
// with a delivery tag of its own.
func (b *nodeBatch) route(st *store, reqs []PublishRequest, state *channel.State, tables map[string][]channel.Row) error {
	o := b.o
	dlq := o.chanOpts.DeadLetterQueue
	var tags channel.TagBlock
	var queues []string
	for i, r := range reqs {
		m := *r.Message
		m.DeliveryInfo = transport.DeliveryInfo{Exchange: r.Exchange, RoutingKey: r.RoutingKey}
		typ := state.Typeof(r.Exchange)
		if r.Exchange != "" && typ == transport.Fanout {
			op := nodeOp{kind: opPublish, msg: i, key: o.key(o.fanoutTopic(r.Exchange, r.RoutingKey))}
			m.DeliveryInfo.DeliveryTag = tags.Next()
			if err := b.envelope(&op, &m); err != nil {
				return err
			}
			b.ops = append(b.ops, op)
			continue
		}
		queues = queues[:0]
		if r.Exchange == "" {
			if r.RoutingKey != "" {
				queues = append(queues, r.RoutingKey)
			}
		} else {
			queues = channel.Lookup(typ, tables[r.Exchange], r.RoutingKey, m.Headers, dlq, queues)
		}
		if len(queues) == 0 && dlq != "" {
			queues = append(queues, dlq)
		}
		for _, q := range queues {
			op := nodeOp{kind: opPush, msg: i, queue: q, key: o.key(o.queueKey(q, m.Properties.Priority))}
			m.DeliveryInfo.DeliveryTag = tags.Next()
			if err := b.envelope(&op, &m); err != nil {
				return err
			}
			b.ops = append(b.ops, op)
			if ms, ok := st.ttl(q); ok {
				for _, k := range o.stepKeys(q) {
					b.ops = append(b.ops, nodeOp{kind: opExpire, msg: i, queue: q, key: k, ms: ms})
				}
			}
		}
	}
	return nil
}

// envelope appends m's envelope to b.envs for op.
func (b *nodeBatch) envelope(op *nodeOp, m *transport.Message) error {
	op.from = len(b.envs)
	var err error
	if b.envs, err = channel.AppendEnvelope(b.envs, m, b.o.bodyEncoding); err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	op.to = len(b.envs)
	return nil
}

// plan groups the commands still to do by node, in batch order. A slot
// whose master cannot be found leaves its commands undone for the next
// round.
func (b *nodeBatch) plan(ctx context.Context) ([]*nodeRun, error) {
	var runs []*nodeRun
	var lookup error // the slot map could not be read: not again this round
	for i := range b.ops {
		op := &b.ops[i]
		if op.done || op.final {
			continue
		}
		addr := op.ask
		if addr == "" && b.c.topo != nil {
			slot := slotOf(op.key)
			var ok bool
			if addr, ok = b.masters[slot]; !ok {
				var err error
				if lookup == nil {
					addr, err = b.c.topo.masterOf(ctx, slot, false)
				}
				if lookup != nil || err != nil {
					if ctx.Err() != nil {
						return nil, b.result(ctx.Err())
					}
					if lookup == nil {
						lookup = connError("publish", err)
						b.c.topo.invalidate()
					}
					op.err, b.pause = lookup, true
					continue
				}
				b.masters[slot] = addr
			}
		}
		k := slices.IndexFunc(runs, func(r *nodeRun) bool { return r.addr == addr })
		if k < 0 {
			k = len(runs)
			runs = append(runs, &nodeRun{addr: addr})
		}
		runs[k].ops = append(runs[k].ops, i)
	}
	return runs, nil
}

// round sends every node's pipeline, then reads the replies node by node.
// It returns an error only when the connection is closed.
func (b *nodeBatch) round(ctx context.Context, runs []*nodeRun) error {
	for _, run := range runs {
		if err := b.send(ctx, run); errors.Is(err, errClosedConn) {
			for _, r := range runs {
				r.err = errClosedConn // replies unread: not for another batch
				b.release(r)
			}
			return fmt.Errorf("redis: %w", transport.ErrClosed)
		}
	}
	for _, run := range runs {
		b.receive(run)
		b.release(run)
	}
	return nil
}

// send writes run's commands (and WAIT) to a connection of its node,
// in pieces of batchChunk bytes.
func (b *nodeBatch) send(ctx context.Context, run *nodeRun) error {
	pc, err := b.c.nodePool(run.addr).get(ctx, b.c, run.addr)
	if err != nil {
		run.err = err
		return err
	}
	run.pc, run.stop = pc, pc.deadline(ctx, b.o)
	for _, i := range run.ops {
		op := &b.ops[i]
		if op.ask != "" {
			pc.out = resp.AppendCommand(pc.out, "ASKING")
		}
		switch op.kind {
		case opPush:
			pc.out = appendCommand3(pc.out, "LPUSH", op.key, b.envs[op.from:op.to])
		case opPublish:
			pc.out = appendCommand3(pc.out, "PUBLISH", op.key, b.envs[op.from:op.to])
		case opExpire:
			pc.out = resp.AppendCommand(pc.out, "PEXPIRE", op.key, strconv.FormatInt(op.ms, 10))
		}
		if len(pc.out) >= batchChunk {
			if run.err = pc.write(pc.out); run.err != nil {
				return run.err
			}
			pc.out = pc.out[:0]
		}
	}
	if b.o.waitReplicas > 0 {
		pc.out = resp.AppendCommand(pc.out, "WAIT", strconv.Itoa(b.o.waitReplicas), strconv.FormatInt(b.o.waitArg(), 10))
	}
	run.err = pc.write(pc.out)
	pc.out = pc.out[:0]
	return run.err
}

// receive reads run's replies and settles each command: done, to retry,
// or failed.
func (b *nodeBatch) receive(run *nodeRun) {
	read := 0 // commands whose reply was read
	if run.err == nil {
		for _, i := range run.ops {
			op := &b.ops[i]
			if op.ask != "" {
				if _, run.err = run.pc.next(); run.err != nil {
					break
				}
			}
			v, err := run.pc.next()
			if err != nil {
				run.err = err
				break
			}
			read++
			op.ask = ""
			if v.Kind != resp.Error {
				op.done, op.err = true, nil
				continue
			}
			if b.redirected(op, run.addr, string(v.Str)) {
				run.stale = true
			}
		}
	}
	if run.err == nil && b.o.waitReplicas > 0 {
		var v resp.Value
		if v, run.err = run.pc.next(); run.err == nil {
			werr := v.Err()
			if werr == nil {
				werr = b.o.waitReplicasOn(v.Int)
			}
			if werr != nil {
				for _, i := range run.ops {
					if op := &b.ops[i]; op.done {
						op.done, op.final, op.err = false, true, fmt.Errorf("redis: publish: %w", werr)
					}
				}
			}
			return
		}
		read = 0 // not known to be replicated: send them all again
	}
	if run.err == nil {
		return
	}
	// The connection failed: what was not read (with WAIT: anything) may
	// or may not be stored.
	cerr := connError("publish", fmt.Errorf("%s: %w", nodeName(run.addr), run.err))
	for _, i := range run.ops[read:] {
		if op := &b.ops[i]; !op.final {
			op.done, op.ask, op.err = false, "", cerr
		}
	}
	b.pause = true
	if b.c.topo != nil {
		b.c.topo.invalidate()
		clear(b.masters)
	}
}

// redirected settles op after the error reply msg from node addr, and
// reports whether the node has become a replica (READONLY).
func (b *nodeBatch) redirected(op *nodeOp, addr, msg string) (replica bool) {
	op.err = fmt.Errorf("redis: publish: %s: %w", nodeName(addr), &resp.RedisError{Msg: msg})
	code, rest, _ := strings.Cut(msg, " ")
	switch code {
	case "MOVED", "ASK":
		slot, to, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(slot)
		if err != nil || to == "" {
			op.final = true
			return false
		}
		if h, p, err := net.SplitHostPort(to); err == nil && h == "" {
			// "MOVED 3999 :6381": the host of the node that answered.
			host, _, _ := net.SplitHostPort(addr)
			to = net.JoinHostPort(host, p)
		}
		if code == "ASK" {
			op.ask = to
			return false
		}
		b.masters[n] = to
		if b.c.topo != nil {
			b.c.topo.invalidate()
		}
	case "TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "READONLY":
		b.pause = true
		if b.c.topo != nil && code == "READONLY" { // a master that became a replica
			b.c.topo.invalidate()
			clear(b.masters)
		}
		return code == "READONLY"
	default:
		op.final = true
	}
	return false
}

// release returns run's connection to its pool: kept when every reply was
// read and the node is still a master.
func (b *nodeBatch) release(run *nodeRun) {
	if run.pc == nil {
		return
	}
	run.stop()
	b.c.nodePool(run.addr).put(run.pc, run.err == nil && !run.stale)
	run.pc = nil
}

// result is nil when every command is done, else an error naming the
// messages that were not stored (or, with WAIT, not confirmed), wrapping
// stopped, why the rounds stopped (ctx's error), when not nil, else the
// first failure.
func (b *nodeBatch) result(stopped error) error {
	var failed []int
	var first error
	var where string
	for i := range b.ops {
		op := &b.ops[i]
		if op.done {
			continue
		}
		if len(failed) == 0 || failed[len(failed)-1] != op.msg {
			failed = append(failed, op.msg)
		}
		if first == nil {
			first = op.err
			if stopped != nil {
				first = stopped
			}
			where = "message " + strconv.Itoa(op.msg)
			if op.queue != "" {
				where += " to queue " + strconv.Quote(op.queue)
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if first == nil {
		first = errors.New("redis: publish: not sent")
	}
	return fmt.Errorf("redis: publish: %d of %d messages not stored or not confirmed (%s%s): %w",
		len(failed), b.total, where, more(len(failed)-1), first)
}

func more(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" and %d more", n)
}

// nodeName names a node in errors: its address, or "redis" for the
// configured one.
func nodeName(addr string) string {
	if addr == "" {
		return "redis"
	}
	return addr
}

// next returns the next reply on pc, reading from the socket as needed.
func (pc *pubConn) next() (resp.Value, error) {
	for {
		v, ok, err := pc.rd.Next()
		if err != nil || ok {
			return v, err
		}
		n, err := pc.nc.Read(pc.in)
		if n > 0 {
			pc.rd.Feed(pc.in[:n])
			continue
		}
		if err == nil {
			err = errNoProgress
		}
		return resp.Value{}, err
	}
}

var errNoProgress = errors.New("redis: read returned nothing")

// nodePools holds a pubPool per cluster node, for PublishBatch. Its mutex
// guards the map: PublishBatch runs on its callers' goroutines.
type nodePools struct {
	mu     sync.Mutex
	pools  map[string]*pubPool
	closed bool
}

// nodePool returns the pool of connections to addr ("": the connection's
// own node, Conn.pub).
func (c *Conn) nodePool(addr string) *pubPool {
	if addr == "" {
		return &c.pub
	}
	n := &c.npub
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pools[addr]
	if !ok {
		if n.pools == nil {
			n.pools = make(map[string]*pubPool)
		}
		p = &pubPool{closed: n.closed}
		n.pools[addr] = p
	}
	return p
}

// close closes every node's pool.
func (n *nodePools) close() {
	n.mu.Lock()
	n.closed = true
	pools := n.pools
	n.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
}
