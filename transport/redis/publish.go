package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/internal/resp"
	"github.com/kombu-go/kombu/transport"
)

// PublishRequest is one message for [Channel.PublishBatch]: the arguments
// of one Publish.
type PublishRequest = transport.PublishRequest

var _ transport.BatchPublisher = (*Channel)(nil)

// PublishBatch publishes messages as Publish would, routed the same way
// and in order, in two round trips for the whole batch: one pipeline reads
// the binding tables of the exchanges involved (SMEMBERS, once each, through
// go-redis), one pipeline sends every LPUSH and PUBLISH, on a connection of
// the transport's own (pubconn.go), written once per batchChunk bytes as
// the batch is encoded. Each stored copy gets its own uuid4 delivery tag.
// mandatory and immediate are ignored, as Kombu does on Redis. It returns
// the first error; a failed pipeline may have stored part of the batch.
//
// On a Redis Cluster, and with Options.PublishWaitReplicas, the batch goes
// as one pipeline per node instead (the master of each queue's slot; with
// WAIT at its end), the nodes' pipelines written before any reply is read;
// commands answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN, and those of a
// node whose connection failed, are sent again, a few times, to the node
// the cluster names then. A connection that fails after Redis stored a
// command but before its reply (or WAIT's) was read makes that retry store
// the message twice. The error then names how many messages, and which
// first, were not stored or not confirmed; those may be anywhere in the
// batch, not only after a prefix (see cluster_publish.go).
//
// Safe for concurrent use.
func (ch *Channel) PublishBatch(ctx context.Context, reqs []PublishRequest) error {
	st := ch.st
	o := st.o
	if len(reqs) == 0 {
		return nil
	}
	if ch.st.c.chans.Closed() {
		return fmt.Errorf("redis: %w", transport.ErrClosed)
	}
	if o.cluster || o.waitReplicas > 0 {
		// A cluster's queues live on several masters, and WAIT must follow
		// the writes on their connection: one pipeline per node
		// (cluster_publish.go).
		return ch.publishNodes(ctx, reqs)
	}
	state := ch.vc.State()
	// Binding tables of the non-fanout named exchanges, read live once.
	var names []string
	for _, r := range reqs {
		if r.Message == nil {
			return fmt.Errorf("redis: publish of a nil message")
		}
		if r.Exchange != "" && state.Typeof(r.Exchange) != transport.Fanout && !slices.Contains(names, r.Exchange) {
			names = append(names, r.Exchange)
		}
	}
	tables := make(map[string][]channel.Row, len(names))
	if len(names) > 0 {
		cmds := make([]*goredis.StringSliceCmd, len(names))
		_, err := st.c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, n := range names {
				cmds[i] = p.SMembers(ctx, o.bindingKey(n))
			}
			return nil
		})
		if err != nil {
			return connError("publish", err)
		}
		for i, n := range names {
			tables[n] = parseTable(cmds[i].Val(), o.sep)
		}
	}
	dlq := o.chanOpts.DeadLetterQueue
	pc, err := st.c.getPub(ctx)
	if err != nil {
		if errors.Is(err, errClosedConn) {
			return fmt.Errorf("redis: %w", transport.ErrClosed)
		}
		return connError("publish", err)
	}
	stop := pc.deadline(ctx, o)
	b := &pubBatch{pc: pc}
	err = st.appendBatch(b, reqs, state, tables, dlq)
	ferr := b.finish()
	stop()
	st.c.putPub(pc, b.err == nil)
	if err == nil {
		err = ferr
	}
	var re replyError
	if errors.As(err, &re) {
		return fmt.Errorf("redis: publish: %w", re.err)
	}
	return connError("publish", err)
}

// appendBatch appends the batch's commands to b (LPUSH to each routed
// queue's priority key, with PEXPIRE of the queue's keys for x-expires, or
// PUBLISH for fanout) as each message is encoded.
func (st *store) appendBatch(b *pubBatch, reqs []PublishRequest, state *channel.State,
	tables map[string][]channel.Row, dlq string) error {
	o := st.o
	var env []byte
	var queues []string
	var err error
	tags := &b.pc.tags // the tags only live in the envelopes
	enc := &b.pc.enc
	enc.Reset(o.bodyEncoding)
	for _, r := range reqs {
		m := *r.Message
		m.DeliveryInfo = transport.DeliveryInfo{Exchange: r.Exchange, RoutingKey: r.RoutingKey}
		typ := state.Typeof(r.Exchange)
		if r.Exchange != "" && typ == transport.Fanout {
			m.DeliveryInfo.DeliveryTag = tags.Next()
			if env, err = enc.Append(env[:0], &m); err != nil {
				return err
			}
			b.pc.out = appendCommand3(b.pc.out, "PUBLISH", o.key(o.fanoutTopic(r.Exchange, r.RoutingKey)), env)
			b.queued()
			continue
		}
		queues = queues[:0]
		if r.Exchange == "" {
			if q := r.RoutingKey; q != "" {
				queues = append(queues, q)
			}
		} else {
			queues = channel.Lookup(typ, tables[r.Exchange], r.RoutingKey, m.Headers, dlq, queues)
		}
		if len(queues) == 0 && dlq != "" {
			queues = append(queues, dlq)
		}
		for _, q := range queues {
			m.DeliveryInfo.DeliveryTag = tags.Next()
			if env, err = enc.Append(env[:0], &m); err != nil {
				return err
			}
			b.pc.out = appendCommand3(b.pc.out, "LPUSH", o.key(o.queueKey(q, m.Properties.Priority)), env)
			b.queued()
			if ms, ok := st.ttl(q); ok {
				for _, k := range o.stepKeys(q) {
					b.pc.out = resp.AppendCommand(b.pc.out, "PEXPIRE", k, strconv.FormatInt(ms, 10))
					b.queued()
				}
			}
		}
		if b.err != nil {
			return nil // finish reports it
		}
	}
	return nil
}

// batchChunk is how many bytes of commands PublishBatch buffers before it
// writes them. pubBatch.add alone writes every pubChunk (8 KiB), so that
// Redis starts on the first commands while the rest are encoded; but on
// this 2-core machine shared with Redis, the five writes of a batch of 100
// small envelopes cost more than the overlap gained. Measured 2026-12-02
// (load average 4.2-5.1, a private Redis, 4 interleaved runs of 140 pairs
// of 2,000 messages in batches of 100), the median ratio of
// messaging.Producer.PublishBatch to a go-redis pipeline of envelopes
// encoded beforehand was 0.64-0.67 with 8 KiB writes and 0.71-0.76 with
// one write per 64 KiB, and Redis spent less CPU per message. Measured
// again later that day with kombu bench --batch 100 (six alternating
// rounds, load average 2.1-5.4): median ratio 0.93 writing once per batch,
// 0.75 writing first at 4 KiB and then every 16 KiB, 0.87 writing once
// early at 20 KiB.
const batchChunk = 64 << 10

// queued counts a command appended to b.pc.out, and has b.add write the
// buffer once it holds batchChunk bytes (or read the replies when
// pubReplies are outstanding).
func (b *pubBatch) queued() {
	if len(b.pc.out) < batchChunk && b.pending+1 < pubReplies {
		b.pending++
		return
	}
	b.add()
}

// appendCommand3 appends the command name key value.
func appendCommand3(b []byte, name, key string, value []byte) []byte {
	b = resp.AppendArrayHeader(b, 3)
	b = resp.AppendBulkString(b, name)
	b = resp.AppendBulkString(b, key)
	return resp.AppendBulk(b, value)
}

// parseTable splits binding members into rows (Kombu's get_table).
func parseTable(members []string, sep string) []channel.Row {
	rows := make([]channel.Row, 0, len(members))
	for _, m := range members {
		var parts [3]string
		rest := m
		ok := true
		for i := 0; i < 2; i++ {
			j := strings.Index(rest, sep)
			if j < 0 {
				ok = false
				break
			}
			parts[i], rest = rest[:j], rest[j+len(sep):]
		}
		if !ok {
			continue
		}
		parts[2] = rest
		rows = append(rows, channel.Row{RoutingKey: parts[0], Pattern: parts[1], Queue: parts[2]})
	}
	return rows
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
