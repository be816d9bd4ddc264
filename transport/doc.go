// Package transport defines what every broker transport provides: the wire
// types a message travels in ([Message], [Properties], [DeliveryInfo]), the
// declarations of the AMQP model ([Exchange], [Queue], [Binding]), the
// [Transport], [Conn] and [Channel] interfaces, and one error vocabulary.
//
// Kombu's own split is kept: a Transport knows how to reach one kind of broker
// (memory, redis, amqp); a Conn is one live connection to it; a Channel is the
// unit that declares, publishes and consumes. Concrete transports live in the
// subpackages memory, redis and amqp, and transporttest holds the conformance
// suite that all of them pass.
//
// # Concurrency
//
// Every Conn belongs to one [hub.Hub]: deliveries, consumer callbacks and all
// consumer-side state (prefetch window, unacknowledged messages) live on the
// hub goroutine. The Channel methods are split by how they run:
//
//   - Declarations, Publish, Get and Close are safe for concurrent use from any
//     goroutine and block the caller until the broker answered. They must not be
//     called from a hub callback when the transport needs the hub to finish them
//     (Close does); the others may be, at the cost of stalling the loop.
//   - Consume returns once the consumer is accepted; deliveries then arrive on
//     the hub goroutine through the callback, which must not block.
//   - Ack and Reject are safe from any goroutine and asynchronous: they queue
//     the request and return at once. Qos, Cancel and Recover are safe from
//     any goroutine; virtual transports (memory, redis) queue them for the
//     hub and return at once, AMQP waits for the broker's answer.
//
// # Consumers the broker cancels
//
// A broker may end a consumer by itself: RabbitMQ sends basic.cancel when
// the consumed queue is deleted (the consumer_cancel_notify capability) or
// when a quorum or mirrored queue loses the replica it was consumed on. A
// transport that learns of it calls [ConsumeOptions].OnCancel on the hub
// goroutine, after the consumer's last delivery, with an error matching
// [ErrConsumerCancelled]; without OnCancel the consumer just stops. The
// field is optional on both sides: a transport whose broker never cancels
// (Kombu's virtual transports keep consuming a deleted queue's name) never
// calls it, and a caller that sets none loses nothing it had before.
//
// # Errors
//
// Errors are wrapped with %w around the sentinels of this package, or carried
// by a [*BrokerError]. [IsConnectionError] and [IsChannelError] tell which
// failures call for a reconnect (Kombu's connection_errors) and which only for
// a new channel (channel_errors).
package transport
