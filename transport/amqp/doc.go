// Package amqp is the AMQP 0-9-1 transport (RabbitMQ), Kombu's pyamqp
// transport in Go. The broker routes: exchanges (direct, topic, fanout,
// headers and any plugin type), bindings, priorities, TTLs and dead
// lettering are RabbitMQ's own, so this package has no virtual channel. It
// speaks AMQP through github.com/rabbitmq/amqp091-go and bridges it into the
// hub.
//
// Messages travel as Kombu's pyamqp sends them (kombu-spec §5.13): the body
// as raw bytes, Kombu's properties as AMQP basic properties, Kombu's headers
// (compression included) as the headers table, so Python Kombu and Celery
// read what this package publishes and the reverse. Delivery tags are the
// channel's tags in decimal; after the AMQP channel was reopened they are
// offset past every tag the previous one handed out, so they stay unique
// per channel. Header values come back JSON-compatible (every
// integer as int64, floats as float64, byte arrays as string, tables as
// map[string]any); timestamps stay time.Time. pyamqp writes a Python int
// outside the int32 range with the field type 'L', which amqp091-go cannot
// read (its reader fails with a frame error and drops the connection, at
// every redelivery of such a message): the socket reader rewrites those tags
// to amqp091's 'l', the same eight bytes (framefix.go). Consumer tags the
// transport chooses are "kombu-go.<8 hex digits>.<n>".
//
// # Options
//
// [ParseConfig] reads a transport.Config (Kombu's connection fields, its
// transport_options and the URL's query) into the typed [Options], in one
// place; [NewWithOptions] makes the transport from Options, and [New] is
// both. Every option is Kombu's (pyamqp's) name with Kombu's default, except
// where [Options] says "ours". Unlike Kombu, an unknown option is an error
// (a *transport.OptionError naming it and listing the valid ones), and
// pyamqp options that cannot work here (Python callables, socket_settings)
// are refused with the reason: no option is accepted and then ignored.
// Dial connects and attaches the connection to a hub.
//
// Beyond what amqp091 offers on its own: heartbeat 0 disables heartbeats
// (amqp091 would take the broker's interval; the socket reader zeroes the
// broker's proposal, see framefix.go); read_timeout and write_timeout are
// socket deadlines (deadline.go): a write that the broker does not take in
// time, or a silence of the broker while an answer is due, drops the
// connection as lost; login_method EXTERNAL authenticates with the TLS
// client certificate and offers no other mechanism, so it never falls back
// to PLAIN.
//
// # The bridge
//
// amqp091-go owns its socket and reads it on its own goroutine, so the
// socket cannot sit in the hub's poller as pyamqp's does in Kombu's hub.
// Instead, per connection:
//
//   - one executor goroutine makes every amqp091 call of the connection
//     (declare, bind, publish, get, consume, cancel, qos, ack, reject, close)
//     one at a time, in the order they were asked. The hub never calls
//     amqp091, so a socket stalled by TCP back-pressure or by a
//     connection.blocked alarm stalls the executor, never the hub. Ack and
//     Reject only queue the request; the executor takes every queued
//     settlement at once and acknowledges a run of tags with a single
//     basic.ack(multiple=true) when that is exact, that is when every tag
//     from the first unsettled one up to the run's top is in the run or was
//     settled before (see settler in settle.go), and one frame per tag
//     otherwise. Double settlements (recognised among every tag settled
//     while batching is on, and the last 65,536 once it is off) and tags
//     the channel never delivered are dropped rather than sent (RabbitMQ
//     would close the channel with 406).
//   - one forwarder goroutine per consumer (per AMQP channel generation)
//     receives the consumer's deliveries, takes everything already waiting
//     (up to 128), converts it to transport messages and hands the batch to
//     the hub with a single Post. The consumer callbacks then run on the hub.
//   - one notifier goroutine receives amqp091's notification channels:
//     connection close, connection blocked/unblocked and every AMQP channel's
//     basic.return. Returns and blocked events reach the hub through Post
//     (OnReturn, [Blocker]); a close goes to the executor, which recovers.
//     Every notification channel is always drained, so amqp091's reader
//     never waits on this package.
//
// Publisher confirms wait on the publishing goroutine, not the executor,
// so concurrent publishers share the executor without waiting for each
// other's confirms.
// Without confirm_publish, a Publish with transport.PublishOptions.Confirm
// (messaging asks for it for quorum queues and streams) puts its channel in
// confirm mode for good, reopened generations included, and waits for that
// message's confirm; the channel's other publishes do not wait.
//
// One executor per connection also means that a connection the broker
// blocks (connection.blocked: RabbitMQ stops reading from publishing
// connections during a memory or disk alarm) delays that connection's acks
// behind the stalled publish. Publish and consume on separate connections,
// as RabbitMQ advises, when consumers must keep acknowledging during an
// alarm.
//
// Declarations (exchanges, queues, bindings, purge, delete) run on a
// per-connection declaration channel, not on the channel they were asked
// on: a refused declaration, such as a passive declare of a missing queue
// (404), closes only that AMQP channel, which the executor reopens on the
// next declaration. An operation that fails because the broker closed the
// channel it ran on (a consume or get on a missing queue) makes the
// executor reopen that channel at once, with its prefetch and its
// consumers, so a Kombu user's channel survives the error as it expects. A
// channel the broker closes later (an unconfirmed publish to a missing
// exchange) is reopened as soon as one of its consumers ends, or by its
// next operation. The consumers of a reopened channel get their
// unacknowledged messages again (redelivered); an auto-delete queue that
// went away with the old channel's consumers is declared again, with its
// bindings, when this connection declared it.
//
// # Consumers the broker cancels
//
// RabbitMQ ends a consumer by itself with basic.cancel when its queue is
// deleted (by anyone) or loses the replica it was consumed on. amqp091
// then closes the consumer's delivery channel while the AMQP channel stays
// open; the forwarder sees it end, the executor drops the consumer, and
// transport.ConsumeOptions.OnCancel runs on the hub after the deliveries
// the consumer got before the cancel, with an error matching
// transport.ErrConsumerCancelled. The same happens to a consumer the
// broker refuses to restart after a channel reopen or a reconnection (its
// queue is gone and this connection did not declare it; an exclusive
// queue in use elsewhere), the error then also carrying the broker's
// refusal. The channel is untouched: the consumer's unacknowledged
// messages can still be settled, and Consume may start a new consumer.
//
// # Goroutine budget
//
// Per connection: 4 (amqp091's reader and heartbeater, the executor, the
// notifier). Per consumer: 2 (amqp091's buffer goroutine and the forwarder).
// Nothing is started per message or per queue without a consumer. Close
// joins every goroutine this package started, and amqp091's end with the
// connection.
//
// # Connection recovery
//
// There is one recovery mechanism, this package's, Kombu-style; amqp091's
// own (Config.Recovery) is never enabled. Reasons, from reading amqp091 v1.16:
//
//   - Its recovery restarts consumers on a new channel whose delivery tags
//     start again at 1 and it does not filter acknowledgements of tags from
//     before the reconnection; an ack of such a tag reaches the new channel
//     and RabbitMQ closes it with 406 (unknown delivery tag), or worse,
//     acknowledges the wrong message. This package offsets every
//     generation's tags past the previous generation's, so tags stay unique
//     per channel, and drops settlements of old tags (the broker has already
//     requeued those messages).
//   - It also reopens channels after channel errors on its own goroutines,
//     asynchronously, and asks callers to wait for its state notifications
//     before calling again; here the executor reopens in line, so the next
//     operation simply finds the channel open.
//   - It retries at a fixed interval, logs through a package-level logger,
//     and is marked experimental. This package uses Kombu's retry policy
//     options and the Config's slog logger.
//
// When the connection is lost (the notifier sees the close, or an operation
// or a forwarder notices it), the executor marks every channel generation
// dead, joins its forwarders, and dials again: at once, then after
// interval_start, interval_start+interval_step, ... up to
// interval_max+interval_start, for at most max_retries retries (defaults:
// 2 s, 2 s, 30 s, and no limit, Kombu's max_retries=None; recovery=false
// disables it). On a new
// connection it declares again the exchanges, queues and bindings this
// connection declared (passive declarations are not recorded, deletions and
// auto-delete queues left by their last consumer are forgotten; a
// server-named queue is declared anew and later operations on its old name
// use the new one), then reopens each channel with confirm mode and its
// prefetch and starts every consumer again with the same tag and callback.
// An entity the broker refuses now is logged and skipped. Requests made
// meanwhile wait in the executor's queue (bounded by their context). Every
// loss starts the retry policy afresh, however many came before: there is
// no backoff that grows from one recovery to the next. Only a connection
// lost within a second of the start of its recovery waits for the rest of
// that second first (Kombu's ConsumerMixin restarts at most once a
// second), so something that breaks every new connection makes the
// transport reconnect once a second, not in a tight loop.
//
// When a call's context ends while the call waits in the executor's queue,
// the call is skipped. If it had already started, it completes; Consume and
// Channel then undo their effect (cancel the consumer, close the channel),
// so that nothing the caller does not know about stays behind.
//
// Delivery is at least once: messages delivered but not yet acknowledged
// when the connection broke are redelivered by the broker with Redelivered
// set; deliveries of the dead connection still on their way to the hub are
// dropped rather than delivered (their acks could not reach the broker
// anyway), except for no-ack consumers. A Publish in flight when the
// connection broke returns a connection error (without confirms, a message
// written just before the break may be lost, as with any AMQP client; with
// confirm_publish, the missing confirmation is reported). Done is closed,
// and Err returns the cause wrapped in [ErrRecoveryFailed], only once the
// recovery gave up (or at once with recovery=false); a 403 ACCESS_REFUSED
// on reconnection gives up at once.
//
// # Concurrency
//
// Every method of the connection and of its channels is safe for concurrent
// use. Declarations, Publish, Get, Consume, Cancel, Qos, Recover and Flow
// wait for the executor (and the broker): they may be called from a hub
// callback, at the cost of stalling the loop until the executor is free,
// which is one round trip normally but a whole recovery while the
// connection is down (bound it with the call's context). Ack and
// Reject return at once. Channel.Close and Conn.Close do not need the hub
// either. Consumer callbacks, OnReturn and OnBlocked handlers run on the hub
// goroutine. Each consumer's deliveries arrive in the broker's order.
//
// Qos sends basic.qos with global=false, as Kombu does: RabbitMQ applies the
// window to each consumer started after it (kombu-spec §5.13,
// qos_semantics_matches_spec). PublishOptions.Immediate is not sent, and
// Flow(false) is refused locally: RabbitMQ answers both with 540
// NOT_IMPLEMENTED, which closes the connection (measured on RabbitMQ 3.10).
// AMQP omits a zero priority from the wire, where pyamqp always sends
// priority 0; readers see no difference.
//
// # Errors
//
// Broker refusals are *transport.BrokerError with the AMQP reply code and
// text: a missing exchange or queue is 404 (errors.Is(err,
// transport.ErrNotFound)), an inequivalent redeclaration or a refused
// deletion 406 (transport.ErrNotEquivalent, transport.ErrPreconditionFailed).
// Kind is KindChannel for those and KindConnection for a lost connection
// (transport.IsConnectionError, errors.Is(err, transport.ErrConnectionLost)).
// Get returns transport.ErrEmpty for an empty queue; methods of a closed
// channel or connection return errors matching transport.ErrClosed. Package
// sentinels: [ErrNacked], [ErrBadTableValue], [ErrChannelMax],
// [ErrRecoveryFailed]. A bad, unknown or refused option is a
// *transport.OptionError from [ParseConfig], [New] or [NewWithOptions].
package amqp
