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
// unacknowledged map are owned by the hub goroutine; other goroutines reach
// them through one mutex-guarded inbox that the hub drains in one batch
// ([Channel.Ack] from many worker goroutines costs an append under the lock,
// and one hub.Post per batch). So Ack, Reject, Consume, Cancel, Qos and
// Recover are safe from any goroutine, a hub callback included, and return
// without waiting. Called on the hub goroutine, Cancel guarantees that its
// callback gets no further delivery; called from another goroutine, a
// delivery the hub has already started may still reach the callback, so
// synchronise with the callback (or cancel from the hub with hub.Post)
// before tearing down what it uses. When no goroutine is driving the hub,
// the goroutine that queues a request runs the pending hub work itself
// (hub.Flush), so settlements of a synchronous Get and Ack loop reach the
// store at once; delivery callbacks may then run on that goroutine, which
// is the hub goroutine for that while. Declarations, Publish and Get run on the caller's
// goroutine and call the store there; the exchange table they read is
// lock-free for publishers. Close runs on the hub through hub.Call and must
// not be called from a hub callback. Delivery callbacks run on the hub
// goroutine and must not block.
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
