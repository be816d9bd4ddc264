package messaging

import (
	"fmt"
	"maps"
	"time"
)

// RabbitMQ queue types (the x-queue-type declaration argument). Kombu has
// no field for them: Kombu users pass queue_arguments={"x-queue-type":
// "quorum"}, which [Queue.QueueArguments] still accepts; [Queue.Type] is
// the typed spelling of the same argument.
const (
	// QueueClassic is RabbitMQ's classic queue, the default.
	QueueClassic = "classic"
	// QueueQuorum is a replicated queue (Raft), RabbitMQ 3.8 and later:
	// durable, never exclusive or auto-delete, with a delivery limit and
	// at-least-once dead-lettering.
	QueueQuorum = "quorum"
	// QueueStream is a replicated append-only log, RabbitMQ 3.9 and later.
	// Consuming does not remove messages: each consumer says where it
	// starts ([Queue.StreamOffset]), needs a prefetch window and acks.
	QueueStream = "stream"
)

// Dead-letter strategies of quorum queues (x-dead-letter-strategy).
const (
	// DeadLetterAtMostOnce is RabbitMQ's default: a dead-lettered message
	// is removed from the source queue whether or not the dead-letter
	// target stored it.
	DeadLetterAtMostOnce = "at-most-once"
	// DeadLetterAtLeastOnce (quorum queues, RabbitMQ 3.10 and later) keeps
	// the message in the source queue until the dead-letter target
	// confirmed it. RabbitMQ applies it only with x-overflow
	// reject-publish, which [Queue.Arguments] then sets unless
	// QueueArguments chose an overflow.
	DeadLetterAtLeastOnce = "at-least-once"
)

// Stream offsets (x-stream-offset) that name a position. A stream
// consumer may also start at a numeric offset (an int or int64) or at a
// time (a time.Time: the first chunk written at or after it).
const (
	// StreamFirst starts at the first message still in the stream.
	StreamFirst = "first"
	// StreamLast starts at the last chunk written.
	StreamLast = "last"
	// StreamNext starts with the next message written (RabbitMQ's default).
	StreamNext = "next"
)

// QuorumQueue returns a durable quorum queue bound to exchange with
// routingKey: [NewQueue] with Type [QueueQuorum]. Set DeliveryLimit and
// the dead-letter fields on the result.
func QuorumQueue(name string, exchange Exchange, routingKey string) Queue {
	q := NewQueue(name, exchange, routingKey)
	q.Type = QueueQuorum
	return q
}

// StreamQueue returns a durable stream bound to exchange with routingKey,
// whose consumers start at offset (StreamFirst, StreamLast, StreamNext, an
// integer offset or a time.Time; nil: RabbitMQ's default, next).
func StreamQueue(name string, exchange Exchange, routingKey string, offset any) Queue {
	q := NewQueue(name, exchange, routingKey)
	q.Type = QueueStream
	q.StreamOffset = offset
	return q
}

// queueType returns the queue's type: Type, else the x-queue-type of
// QueueArguments, else "" (the broker's default).
func (q Queue) queueType() string {
	if q.Type != "" {
		return q.Type
	}
	if t, ok := q.QueueArguments["x-queue-type"].(string); ok {
		return t
	}
	return ""
}

// Replicated reports whether the queue is a quorum queue or a stream,
// whose messages are safe only once the broker confirmed them: a
// [Producer] waits for publisher confirms when it publishes to such a
// queue (see [ProducerOptions].Confirm).
func (q Queue) Replicated() bool {
	t := q.queueType()
	return t == QueueQuorum || t == QueueStream
}

// typeArguments adds the queue-type arguments of the typed fields to args
// (which it may allocate). A typed field that is set wins over the same
// key in QueueArguments.
func (q Queue) typeArguments(args map[string]any) map[string]any {
	put := func(k string, v any) {
		if args == nil {
			args = map[string]any{}
		}
		args[k] = v
	}
	if q.Type != "" {
		put("x-queue-type", q.Type)
	}
	if q.DeliveryLimit > 0 {
		put("x-delivery-limit", int64(q.DeliveryLimit))
	}
	if q.DeadLetterExchange != "" || q.DeadLetterRoutingKey != "" {
		// A routing key alone dead-letters through the default exchange
		// to the queue of that name.
		put("x-dead-letter-exchange", q.DeadLetterExchange)
	}
	if q.DeadLetterRoutingKey != "" {
		put("x-dead-letter-routing-key", q.DeadLetterRoutingKey)
	}
	if q.DeadLetterStrategy != "" {
		put("x-dead-letter-strategy", q.DeadLetterStrategy)
		if _, ok := args["x-overflow"]; !ok && q.DeadLetterStrategy == DeadLetterAtLeastOnce {
			put("x-overflow", "reject-publish")
		}
	}
	return args
}

// consumerArguments returns ConsumerArguments plus x-stream-offset when
// StreamOffset is set.
func (q Queue) consumerArguments() map[string]any {
	if q.StreamOffset == nil {
		return q.ConsumerArguments
	}
	args := maps.Clone(q.ConsumerArguments)
	if args == nil {
		args = map[string]any{}
	}
	args["x-stream-offset"] = q.StreamOffset
	return args
}

// checkStreamOffset reports a StreamOffset RabbitMQ cannot take.
func (q Queue) checkStreamOffset() error {
	switch v := q.StreamOffset.(type) {
	case nil, int, int64, time.Time:
		return nil
	case string:
		switch v {
		case StreamFirst, StreamLast, StreamNext:
			return nil
		}
		// RabbitMQ also takes an interval such as "1h" or "7D" (the
		// messages written in that span back from now).
		if len(v) > 1 && isDigits(v[:len(v)-1]) {
			switch v[len(v)-1] {
			case 'Y', 'M', 'D', 'h', 'm', 's':
				return nil
			}
		}
	}
	return fmt.Errorf("messaging: queue %q: StreamOffset %v (%T) is not first, last, next, an integer offset, a time.Time or an interval like \"1h\"",
		q.Name, q.StreamOffset, q.StreamOffset)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkConsume reports a consumer set-up RabbitMQ would refuse for a
// stream (by closing the channel with 406 or 540): streams are consumed
// with acknowledgements and a prefetch window.
func (q Queue) checkConsume(noAck bool, prefetch int) error {
	if q.queueType() != QueueStream {
		if q.StreamOffset != nil {
			return fmt.Errorf("messaging: queue %q: StreamOffset is set but the queue is not a stream (Type %q)", q.Name, q.queueType())
		}
		return nil
	}
	if noAck {
		return fmt.Errorf("messaging: stream %q cannot be consumed with NoAck: RabbitMQ needs acknowledgements on streams", q.Name)
	}
	if prefetch <= 0 {
		return fmt.Errorf("messaging: stream %q needs a PrefetchCount: RabbitMQ refuses unlimited prefetch on streams", q.Name)
	}
	return q.checkStreamOffset()
}
