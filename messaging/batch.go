package messaging

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/kombu-go/kombu/transport"
)

// BatchMessage is one message of Producer.PublishBatch.
type BatchMessage struct {
	Body    any
	Options PublishOptions
}

// BatchOptions configure PublishBatch as a whole.
type BatchOptions struct {
	// Retry publishes through Connection.Ensure with RetryPolicy. A batch
	// interrupted by a connection error is published again from its start,
	// so some messages may be published twice (at least once).
	Retry       bool
	RetryPolicy RetryPolicy
}

// PublishBatch prepares every message (as Publish does; the per-message
// Retry settings are ignored in favour of opts), declares the entities
// they need once, and publishes them in order. Channels that can send a
// batch in one round trip (a Redis pipeline) do so; the others publish one
// message at a time. The first failure stops the batch: the messages
// before it are published, except on a Redis Cluster, where the batch's
// pipelines go to several masters at once and the error names the messages
// that were not stored (any of the batch's).
//
// Safe for concurrent use.
func (p *Producer) PublishBatch(ctx context.Context, msgs []BatchMessage, opts BatchOptions) error {
	bufs := getBatchBufs(len(msgs))
	defer bufs.put()
	batch, tms := bufs.reqs, bufs.msgs
	var declare []Declaration
	var seen map[string]bool
	for i := range msgs {
		bm := &msgs[i] // PublishOptions is large: no copies of it per message
		ex, rk, inSlab, err := p.prepareInto(&tms[i], bm.Body, &bm.Options, &bufs.bodies)
		if err != nil {
			return fmt.Errorf("messaging: batch message %d: %w", i, err)
		}
		bufs.slabbed[i] = inSlab
		list := p.declareList(&bm.Options)
		batch[i] = transport.PublishRequest{Message: &tms[i], Exchange: ex, RoutingKey: rk,
			Options: transport.PublishOptions{Mandatory: bm.Options.Mandatory, Immediate: bm.Options.Immediate,
				Confirm: p.confirmFor(&bm.Options, list, ex, rk)}}
		for _, d := range list {
			if seen == nil {
				seen = map[string]bool{}
			}
			if k := d.cacheKey(); !seen[k] {
				seen[k] = true
				declare = append(declare, d)
			}
		}
	}
	publish := func(ctx context.Context, ch transport.Channel) error {
		for _, d := range declare {
			if _, err := p.conn.MaybeDeclare(ctx, ch, d); err != nil {
				return err
			}
		}
		if bp, ok := ch.(transport.BatchPublisher); ok {
			return bp.PublishBatch(ctx, batch)
		}
		for i, b := range batch {
			if bufs.slabbed[i] {
				// Publish may keep the message (the memory transport
				// stores it): its body gets bytes of its own.
				b.Message.Body, bufs.slabbed[i] = bytes.Clone(b.Message.Body), false
			}
			if err := ch.Publish(ctx, b.Message, b.Exchange, b.RoutingKey, b.Options); err != nil {
				return fmt.Errorf("messaging: batch message %d: %w", i, err)
			}
		}
		return nil
	}
	if !opts.Retry {
		ch, err := p.channel(ctx)
		if err != nil {
			return err
		}
		return publish(ctx, ch)
	}
	return p.ensure(ctx, opts.RetryPolicy, publish)
}

// batchBufs are the request and message slices of one PublishBatch, reused
// by the next: a batch of 100 small messages allocated 45 KB of them, which
// the garbage collector had to scan (measured: a quarter of the CPU time
// of kombu bench --batch went to the collector). Transports do not keep a
// *transport.Message after Publish or PublishBatch returned (AMQP converts
// it first, the virtual channel copies it, Redis encodes it), so reusing
// the structs is safe.
//
// bodies is the slab the batch's serialized values are appended to, one
// allocation per batch instead of one per message (kombu bench's bodies
// were a third of the bytes its batched publish allocated, and the
// collector's work follows them). A slab body is reused by a later batch,
// so it only goes where it is not kept: to a transport.BatchPublisher,
// whose contract says so for messages that are not mandatory (those never
// go in the slab), or, copied first, to Publish (slabbed marks them).
// Headers are not reused.
type batchBufs struct {
	reqs    []transport.PublishRequest
	msgs    []transport.Message
	slabbed []bool
	bodies  []byte
}

// maxPooledBatch bounds the batches whose slices are kept for reuse, and
// maxPooledBodies the slab kept.
const (
	maxPooledBatch  = 4096
	maxPooledBodies = 256 << 10
)

var batchPool = sync.Pool{New: func() any { return new(batchBufs) }}

// getBatchBufs returns slices of n requests and messages.
func getBatchBufs(n int) *batchBufs {
	if n > maxPooledBatch {
		return &batchBufs{reqs: make([]transport.PublishRequest, n), msgs: make([]transport.Message, n),
			slabbed: make([]bool, n)}
	}
	b := batchPool.Get().(*batchBufs)
	if cap(b.reqs) < n {
		b.reqs = make([]transport.PublishRequest, n)
		b.msgs = make([]transport.Message, n)
		b.slabbed = make([]bool, n)
	}
	b.reqs, b.msgs, b.slabbed = b.reqs[:n], b.msgs[:n], b.slabbed[:n]
	return b
}

// put clears the slices (they must not keep bodies alive) and pools them.
func (b *batchBufs) put() {
	if cap(b.reqs) > maxPooledBatch {
		return
	}
	clear(b.reqs)
	clear(b.msgs)
	clear(b.slabbed)
	b.bodies = b.bodies[:0]
	if cap(b.bodies) > maxPooledBodies {
		b.bodies = nil
	}
	batchPool.Put(b)
}
