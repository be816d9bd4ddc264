// Package messaging is Kombu's user API in Go: [Connection] (URLs,
// failover, lazy connect, ensure/retry), [Producer], [Consumer], [Message],
// the entities [Exchange], [Queue] and [Binding], pools, a consumer worker
// with reconnection ([ConsumerWorker]), a bounded pool of handler
// goroutines ([Workers]), the simple interface ([SimpleQueue]) and Kombu's
// common helpers. The wire formats are Kombu's, so a Go service and a Python
// Kombu or Celery service can share a broker.
//
// The quickstart (see Example): connect to "memory://" (or "redis://",
// "amqp://..."), declare a direct exchange "media" and a queue "video"
// bound to it, publish a JSON body with a Producer, consume it with a
// Consumer whose callback prints and acknowledges it, and call
// conn.DrainEvents.
//
// # Design
//
// Entities are values: Exchange and Queue are plain structs, and the calls
// that do I/O take a context and a channel (q.Declare(ctx, ch)), where
// Kombu binds entities to channels. Kombu's keyword arguments become option
// structs whose zero values are Kombu's defaults, with two exceptions
// spelled out where they apply: Durable (Kombu's default is true; use
// [NewExchange] and [NewQueue], which set it) and MaxRetries (0 means "no
// limit", [NoRetries] means Kombu's max_retries=0).
//
// URLs follow Kombu's parser ([ParseURL]): percent-decoding, the path as
// virtual host ("amqp://h/%2f" is "/"), query parameters as transport
// options (ssl_* grouped), "redis+socket:///path", ';'-separated alternates
// with round-robin or shuffle failover. [Connection.AsURI] masks the
// password ("amqp://guest:**@localhost:5672//").
//
// Kombu to Go:
//
//	Kombu                                   Go
//	Connection(url, ...)                    NewConnection(url, Options{...})   (lazy, as Kombu)
//	conn.connect()                          conn.Connect(ctx)
//	conn.ensure_connection(...)             conn.EnsureConnection(ctx, RetryPolicy{...})
//	conn.ensure(obj, fun, ...)              conn.Ensure(ctx, RetryPolicy{...}, fn)
//	conn.autoretry(fun, channel)            conn.Ensure (fn receives the current channel)
//	conn.default_channel / channel()        conn.DefaultChannel(ctx) / conn.Channel(ctx)
//	conn.drain_events(timeout=t)            conn.DrainEvents(ctx with deadline t)
//	socket.timeout                          ErrTimeout (also context.DeadlineExceeded)
//	conn.register_with_event_loop(hub)      conn.RegisterWithEventLoop(h) / Options.Hub
//	conn.info() / as_uri() / clone()        conn.Info() / conn.AsURI(pw) / conn.Clone()
//	conn.release() / close()                conn.Close()
//	retry_over_time(fun, ...)               Retry(ctx, RetryPolicy{...}, retryable, fn)
//	Exchange('media', 'direct')             NewExchange("media", Direct)
//	Queue('video', media, 'video')          NewQueue("video", media, "video")
//	Queue(..., expires=1.5)                 Queue{..., Expires: 1500 * time.Millisecond}
//	binding(ex, routing_key)                Binding{Exchange: ex, RoutingKey: rk}
//	dest.bind_to(src, routing_key=rk)       dest.BindTo(ctx, ch, src, rk, nil)   (AMQP only)
//	dest.unbind_from(src, routing_key=rk)   dest.UnbindFrom(ctx, ch, src, rk, nil)
//	transport_options on_blocked=f          conn.OnBlocked(f) / conn.OnUnblocked(g)
//	queue(channel).declare()                q.Declare(ctx, ch)
//	maybe_declare(entity, channel)          conn.MaybeDeclare(ctx, ch, entity)
//	Producer(conn, exchange=...)            NewProducer(conn, ProducerOptions{Exchange: ...})
//	producer.publish(body, routing_key=...) p.Publish(ctx, body, PublishOptions{RoutingKey: ...})
//	publish(..., reply_to=queue)            PublishOptions{ReplyTo: queue.Name}
//	publish(..., expiration=10)             PublishOptions{Expiration: 10 * time.Second}
//	Consumer(conn, queues, callbacks=[f])   NewConsumer(conn, ConsumerOptions{Queues, Callbacks})
//	callback(body, message)                 func(body any, m *Message)
//	with consumer: / consumer.consume()     c.Consume(ctx) ... c.Cancel(ctx)
//	consumer.close()                        c.Close() (for good), or c.Drain(ctx) (waits for work in flight)
//	message.payload / decode()              m.Decode() (cached), m.DecodeInto(&v)
//	message.ack() / reject() / requeue()    m.Ack() / m.Reject() / m.Requeue()
//	ConsumerMixin                           NewConsumerWorker(conn, ConsumerWorkerOptions{...}).Run(ctx)
//	mixin.should_stop = True                w.Stop() (drains), w.Drain(ctx), w.Close()
//	conn.SimpleQueue(name)                  NewSimpleQueue(ctx, conn, name, SimpleQueueOptions{})
//	queue.get(block=True, timeout=t)        sq.Get(ctx with deadline t)
//	Empty                                   ErrEmpty
//	connections[conn].acquire(block=True)   NewConnectionPool(conn, PoolOptions{}).Acquire(ctx)
//	producers[conn].acquire()               NewProducerPool(pool, ...).Acquire(ctx)
//	drain_consumer / itermessages           DrainConsumer / IterMessages (iterators)
//	send_reply / collect_replies            SendReply / CollectReplies
//	Broadcast(name)                         Broadcast(name, BroadcastOptions{})
//	queue_arguments={"x-queue-type": ...}   Queue.Type (QuorumQueue, StreamQueue), DeliveryLimit, DeadLetter*
//	consumer_arguments={"x-stream-offset"}  Queue.StreamOffset (StreamFirst, StreamLast, StreamNext, n, time)
//	transport_options confirm_publish       also ProducerOptions.Confirm / PublishOptions.Confirm
//
// Publisher confirms: a Producer waits for the broker's confirm of every
// message that may reach a quorum queue or a stream it knows of
// (ConfirmAuto, the default; see [Confirm]), on top of the connection's
// confirm_publish. Over a RabbitMQ cluster, list the nodes as alternates
// and set the AMQP option recovery=false, so that a lost node makes the
// Connection fail over to the next one (README, "Scaling out").
//
// The serializer and compression registries are the packages serializer
// and compression; a Connection uses their immutable defaults unless
// Options name others.
//
// # Concurrency
//
// Every Connection belongs to one hub.Hub: its own (created on first use,
// closed by Close) or the caller's (Options.Hub, RegisterWithEventLoop),
// which the caller runs and closes. Deliveries, consumer callbacks,
// OnDecodeError, OnReturn and the transports' timers run on the hub
// goroutine: whoever is running the hub at the time. Callbacks must not
// block: hand slow work to a [Workers] pool (or any goroutine) and settle
// the message from there.
//
// Someone must run the hub for deliveries to arrive. Settlements need no
// one: while nobody runs the hub, Message.Ack (Reject, Requeue, and the
// record of a [Queue.Get]) hands the settlement to the transport on the
// calling goroutine, running no callback, so Kombu's polling loop of Get
// and Ack works without a hub loop. Either call [Connection.DrainEvents]
// (Kombu's synchronous style: it runs the hub on the calling goroutine until
// a delivery, then returns), or run the hub yourself: h, _ := conn.Hub();
// go h.Run(ctx). Only one goroutine can run a hub at a time: while h.Run
// runs elsewhere, DrainEvents returns an error matching hub.ErrRunning
// (deliveries then already flow). [SimpleQueue.Get], [DrainConsumer] and
// [ConsumerWorker] run the hub through DrainEvents.
//
// When a connection breaks, DrainEvents reports it once (a connection
// error: transport.IsConnectionError) and the next use reconnects lazily,
// but consumers are not restarted by themselves: Consumer.Done is closed
// and Consumer.Err says why; call Consume again (it revives a consumer on
// the new default channel), or let a [ConsumerWorker] do it all. The same
// holds when the broker cancels a consumer by itself (RabbitMQ's
// basic.cancel when the queue is deleted): Done closes with a
// [*CancelledByBrokerError], DrainEvents returns it once, and Consume
// declares the queues again and revives the consumer.
//
// # Closing and draining
//
// Every type here that holds something has Close() error: it releases at
// once, without a context, and is idempotent (Connection, Producer,
// Consumer, SimpleQueue, the pools, Workers, ConsumerWorker). The types
// with work in flight also have Drain(ctx) error, a graceful Close: it
// stops taking new work, waits for the work in flight until ctx ends, then
// closes. [Consumer.Drain] waits for its running callbacks and for every
// message it delivered to be settled, wherever the callbacks handed it
// (a [Workers] pool settles later, from its goroutines); at the deadline
// the unsettled messages go back to the broker. [Workers.Drain] finishes
// the queued jobs. [ConsumerWorker.Drain] drains its consumers and closes
// its connection, and its Run does the same, within DrainTimeout, when its
// context ends, which makes SIGTERM handling one signal.NotifyContext
// (see the ConsumerWorker example). Drain the consumers before the Workers
// pool they feed: a closed pool requeues what it is given.
//
// Safe for concurrent use from any goroutine: Connection (all methods),
// Producer.Publish and PublishBatch, the Consumer methods, Message's Ack,
// Reject, Requeue and Decode, the pools, Workers and the ConsumerWorker
// methods. Do not call Connection, Producer or Consumer methods from a hub
// callback, except Message settlement, Consumer.Done and Consumer.Err,
// ConsumerWorker.Stop, and Producer.Publish on transports whose publish
// does not need the hub (memory, Redis); Connection.Close and DrainEvents
// there return an error matching hub.ErrInCallback instead of waiting for
// the hub that runs them. Close joins everything it started: a Connection
// its decode pool; Workers its goroutines; a Consumer the goroutine its
// Done started to watch the connection (which also ends with the
// connection), and the one that cancels its other queue consumers after a
// cancel by the broker (which ends by itself). Nothing else in this
// package starts goroutines.
//
// # Decoding off the hub
//
// A consumer decodes a message on the hub only when that is cheap: a body
// of at most Options.InlineDecodeLimit bytes (16 KiB) that is not
// compressed. Larger or compressed bodies are decompressed and
// deserialized by the connection's decode pool (Options.DecodeWorkers
// goroutines at most, GOMAXPROCS-1 by default, started on demand, joined
// by Close), and their callbacks then run on the hub. Deliveries of each
// queue still reach the callbacks in the broker's order: a message behind
// one that the pool prepares waits for it; other queues do not. The
// decompressed size is bounded while it is decompressed
// (Options.MaxDecompressedSize, 64 MiB). OnMessage handlers receive the
// message decompressed but undecoded, as in Kombu; Decode on the hub then
// decodes there. The README's "Bad input and failures" gives the
// measurements behind these choices.
//
// # Errors
//
// Errors wrap this package's sentinels and the transport's
// (transport.ErrNotFound, transport.IsConnectionError ...); match them
// with errors.Is and errors.As:
//
//   - [ErrOperational] / [*OperationalError]: a connection that could not be
//     established within the retry policy (Kombu's OperationalError).
//   - [ErrTimeout]: DrainEvents' deadline passed (also matches
//     context.DeadlineExceeded).
//   - [ErrEmpty]: SimpleQueue.Get, GetNowait, Queue.Get found no message.
//   - [ErrMessageState] / [*MessageStateError]: a message settled twice
//     ("Message already acknowledged with state: ACK").
//   - [ErrDecode] / [*DecodeError]: an undecodable message (malformed envelope,
//     failed decompression, [ErrContentDisallowed], a serializer error);
//     it goes to OnDecodeError, or to the consumer's DeadLetterQueue with
//     its bytes as received, or it is rejected, logged (by slog.Default()
//     unless Options.Logger says otherwise) and the error returned by
//     DrainEvents: never dropped silently. Consumer.DecodeErrors and
//     Connection.DecodeErrors count them.
//   - [ErrContentDisallowed], [ErrNotInstalled], [ErrEncode]: re-exported
//     from the serializer package.
//   - [ErrLimitExceeded] / [*LimitExceededError]: a full pool and a caller
//     that would not wait.
//   - [ErrUnknownTransport], [ErrInvalidURL]: bad URLs, found by
//     NewConnection before anything dials.
//   - *transport.OptionError: an unknown, misspelt or malformed transport
//     option (URL query or TransportOptions), found when the transport is
//     made, at the first connect, and never retried. Kombu ignores unknown
//     options; refusing them is deliberate.
//   - transport.ErrUnsupported: an operation the transport cannot do, such
//     as Exchange.BindTo on memory or Redis.
//   - [ErrStopped]: Consumer.Err after Close, Drain or Cancel, and
//     Consume after Close or Drain.
//   - [ErrCancelledByBroker] / [*CancelledByBrokerError]: Consumer.Err, and
//     the next DrainEvents, after the broker cancelled one of the
//     consumer's queue consumers (it unwraps to
//     transport.ErrConsumerCancelled).
//   - [ErrClosed], [ErrNoCallbacks], [ErrSlowConsumer].
package messaging
