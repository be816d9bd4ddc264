package messaging

import (
	"context"
	"fmt"

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
// before it are published.
//
// Safe for concurrent use.
func (p *Producer) PublishBatch(ctx context.Context, msgs []BatchMessage, opts BatchOptions) error {
	batch := make([]transport.PublishRequest, len(msgs))
	var declare []Declaration
	seen := map[string]bool{}
	for i, bm := range msgs {
		m, ex, rk, err := p.Prepare(bm.Body, bm.Options)
		if err != nil {
			return fmt.Errorf("messaging: batch message %d: %w", i, err)
		}
		batch[i] = transport.PublishRequest{Message: m, Exchange: ex, RoutingKey: rk,
			Options: transport.PublishOptions{Mandatory: bm.Options.Mandatory, Immediate: bm.Options.Immediate,
				Confirm: p.confirmFor(bm.Options, p.declareList(bm.Options), ex, rk)}}
		for _, d := range p.declareList(bm.Options) {
			if !seen[d.cacheKey()] {
				seen[d.cacheKey()] = true
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
