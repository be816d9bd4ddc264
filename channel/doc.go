// Package channel is Kombu's virtual channel (kombu.transport.virtual): the
// half of a broker transport that the memory and Redis transports share.
// It implements transport.Channel over a small [Store] that each of them
// provides.
//
// # Design
//
// The channel does what Kombu's virtual Channel does in Python:
//
//   - Exchanges are process-local ([State], Kombu's BrokerState): their
//     types and bindings live here, and a publish routes by the local type
//     (an exchange this process has not declared routes as direct). The
//     exchange types are direct, topic with Kombu's exact regular
//     expressions ([TopicPattern]; "a.*.c" matches "a.b.x.c"), fanout
//     (handed whole to [Store.PutFanout]) and headers (RabbitMQ's x-match
//     all/any, which Kombu lacks; the binding arguments are stored as JSON
//     in the pattern, [HeadersPattern]).
//   - The binding table of an exchange is read from the store at every
//     publish ([Store.Table]; Redis: SMEMBERS of _kombu.binding.<exchange>),
//     and a new binding is written through it ([Store.Bind]); unbinding
//     changes only the local state, as in Kombu.
//   - Unroutable messages go to the dead-letter queue when one is set
//     (Options.DeadLetterQueue, Kombu's deadletter_queue), else are returned
//     when mandatory and a handler is set ([Channel.HandleReturns]), else
//     dropped.
//   - Delivery tags are uuid4 strings ([NewDeliveryTag]), stable across
//     redeliveries; priorities are clamped to 0..9 ([Priority]).
//   - QoS: the prefetch window and the map of unacknowledged deliveries,
//     restored most recent first on Close and Recover. Unlike Kombu's memory
//     transport (do_restore=False), Close restores them by default so that
//     no message is lost when a consumer dies (Options.NoRestoreOnClose
//     turns that off).
//   - [FairCycle] and the queue order strategies ([NewCycle]: round_robin,
//     priority, sorted) order the consumed queues.
//
// Consumption comes in two forms. A pulling store (memory, [Puller]) calls
// [Channel.Wake] when a message arrives; the channel then takes batches of
// messages, within its prefetch window, in the hub's next turn. A pushing
// store (Redis) reads its own sockets on the hub and hands each message to
// [Channel.Deliver], staying within [Channel.Room]; it learns which queues
// to read from [Store.Consuming] and when to start again from
// [Store.Resume].
//
// # Concurrency
//
// A Channel belongs to one hub. The consumers, the prefetch window and the
// unacknowledged map are owned by the hub's owner; other goroutines reach
// them through one mutex-guarded inbox of requests ([Channel.Ack] from many
// worker goroutines costs an append under the lock, and at most one
// hub.Post until the hub has taken the batch). So Ack, Reject, Get,
// Consume, Cancel, Qos and Recover are safe from any goroutine, a hub
// callback included, and return without waiting. Called on the hub
// goroutine, Cancel guarantees that its callback gets no further delivery;
// called from another goroutine, a delivery the hub has already started may
// still reach the callback, so synchronise with the callback (or cancel from
// the hub with hub.Post) before tearing down what it uses.
//
// Delivery callbacks run only on the goroutine that drives the hub (Run,
// Drive through DrainEvents, or a Call waiting for its function), and must
// not block. A goroutine that acks never runs one. When a driver holds the
// hub, the driver applies the inbox in its next turn. When nobody drives
// the hub (Kombu's synchronous "m = queue.get(); m.ack()"), the goroutine
// that queues a request applies the inbox at once, holding the hub through
// hub.TryOwn: acknowledgements, rejections and Get's unacked records reach
// the store ([Store.Settle]) before Ack returns, and nothing else of the
// loop runs. Whatever such a request makes deliverable (room reopened in
// the prefetch window, a new consumer) waits for the next driver: pulling
// and resuming are left to a flush posted to the hub. This replaces an
// earlier design in which the acking goroutine ran all pending hub work,
// consumer callbacks included, which deadlocked a callback that looked at
// the message being acked.
//
// Declarations, Publish and Get run on the caller's goroutine and call the
// store there; the exchange table they read is lock-free for publishers.
// Close runs on the hub through hub.Call; from a hub callback it returns
// an error matching hub.ErrInCallback at once instead of waiting for
// itself.
//
// # Errors
//
// Errors match the transport sentinels: transport.ErrNotFound for a passive
// declaration of something missing, transport.ErrNotEquivalent for an
// exchange redeclared with other settings, transport.ErrPreconditionFailed
// for DeleteQueue with ifEmpty on a queue that holds messages,
// transport.ErrEmpty from Get, transport.ErrClosed after Close. Store errors
// are wrapped with %w. A message the store could not decode (Err set) is
// delivered like any other, never dropped. [ErrConsumerTagInUse] reports a
// duplicate consumer tag.
package channel
