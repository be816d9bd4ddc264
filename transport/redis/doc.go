// Package redis is Kombu's Redis transport (kombu.transport.redis) on the
// hub: the same keys, JSON envelopes, binding sets, priority lists, PUB/SUB
// fanout and unacked hash as Python's Kombu, so that a Go service and a
// Kombu or Celery service share one Redis and consume each other's
// messages, and either side restores what the other left unacknowledged.
//
// Create a transport with [New] from a transport.Config (redis://,
// rediss://, redis+socket:// and sentinel:// forms, Kombu's transport
// options); [Transport.Dial] returns a connection whose channels are
// channel.Channel (Kombu's virtual channel) over this package's store, plus
// [Channel.PublishBatch].
//
// # Design
//
// Two kinds of connections serve a channel:
//
//   - Request/response commands go through go-redis: publishing (LPUSH to
//     the priority list, PUBLISH for fanout), bindings (SADD, SMEMBERS),
//     declarations, purge, size, basic_get; on an executor goroutine of
//     the connection, the consumer side's acknowledgements (ZREM + HDEL,
//     coalesced into one pipeline per batch), restores (restore_by_tag,
//     one atomic script) and the unacked records of fanout messages; and,
//     on a sweeper goroutine of the connection, the visibility-timeout
//     sweep (restore_visible; see below). The hub goroutine never waits
//     for go-redis, except when a channel closes.
//   - Each consuming channel owns up to two sockets that go-redis never
//     touches, registered in the hub's poller (Kombu's MultiChannelPoller,
//     one per connection): one for BRPOP and the pop script over the
//     consumed queues' priority keys, one for PSUBSCRIBE (fanout queues).
//     They are dialled with net.Dialer on a short-lived goroutine, and the
//     hub takes the descriptor over (a duplicate through
//     SyscallConn().Control; the net.Conn is then closed). The handshake
//     (AUTH, SELECT, CLIENT SETNAME, CLIENT ID, SCRIPT LOAD) is pipelined
//     on the socket in RESP2. Writes are flushed at once, and a writer is
//     registered only while bytes wait; replies are parsed by
//     internal/resp from whatever bytes arrived and dispatched straight to
//     the channel (Deliver) and its consumers' callbacks. A descriptor is
//     always removed from the hub before it is closed, and every
//     registration carries a generation so that a stale event for a reused
//     descriptor number is dropped.
//
// TLS (rediss://) cannot be read through a raw descriptor. Its documented
// fallback: the TLS connection is bridged to one end of a unix socket pair
// by two goroutines (one per direction), and the hub owns the other end,
// so the hub's code is the same for TLS; the goroutines end when either
// side closes and the connection joins them in Close.
//
// Sentinel: go-redis's failover client serves the commands; the hub
// sockets ask the sentinels for the current master each time they dial, so
// they follow a failover when they reconnect.
//
// # Consuming beyond Kombu
//
// Kombu sends one BRPOP per delivery and records each message with a MULTI
// (ZADD unacked_index, HSET unacked) after Redis has handed it over. Here
// the BRPOP socket alternates between two commands:
//
//   - While messages are known to wait, one EVALSHA of a Lua script pops up
//     to the channel's free prefetch room from the keys in Kombu's order
//     (step-major, then queue, rotated by the queue_order_strategy) and,
//     for each message, writes HSET unacked <tag> '[<envelope>, <exchange>,
//     <routing_key>]' and ZADD unacked_index <now> <tag> in the same atomic
//     step (tag, exchange and routing key read with cjson inside Redis).
//     Such a message is never out of its list without a record.
//   - When a pop comes back short, the next command is a BRPOP (timeout
//     brpop_timeout, Kombu's 1 s). When it returns a message, the script
//     is sent again with that message as an argument: it records it first,
//     pops more up to the room, and only then are the messages delivered.
//
// Every callback therefore runs after its message's unacked record exists
// in Redis. The window that remains is the BRPOP itself: from the moment
// Redis pops a message for the BRPOP until the script's record of it
// commits (one round trip later), the message exists only in the socket
// and in this process. If the connection breaks after the script was sent,
// the message is carried over and recorded on the next connection; it is
// lost only if the process dies in that window, or the connection breaks
// with the BRPOP reply unread. A pop script whose reply is lost leaves its
// messages recorded but undelivered: the visibility timeout restores them
// (an hour by default). Closing the window completely (BLMOVE into a
// per-consumer processing list, recorded from there) is later work.
//
// A change of the consumed queues while a BRPOP waits sends CLIENT UNBLOCK
// (through go-redis) so that the next BRPOP uses the new keys at once.
// Messages popped for a queue no longer consumed, and those in flight when
// the channel closes, go back to the head of their list (RPUSH) and their
// records are deleted, in one transaction.
//
// # Restores and the visibility sweep
//
// With ack emulation, a requeue (Reject with requeue) or a restore
// (Recover, a channel's close) is Kombu's restore_by_tag: Go reads the record, decodes
// [envelope, exchange, routing_key], marks the envelope redelivered and
// looks up the queues, then one Lua script pushes it (LPUSH for a
// requeue, to the back; RPUSH for a restore, consumed next) to the
// priority key of the message and deletes the record (ZREM, HDEL), only
// if the record is still the one read (its SHA-1 is compared in the
// script). Kombu runs the same steps in a WATCH/MULTI transaction that it
// retries; a record that changed in between (acked, restored by a sweep,
// delivered again) is left alone here instead.
//
// The visibility-timeout sweep (Kombu's restore_visible) runs on a
// sweeper goroutine of the connection, never on the executor, so acks
// never wait for it. The hub decides when, as Kombu does: the first
// Consume (Kombu's on_poll_init) and then every tick of the
// unacked_restore_interval timer while a channel consumes count as a
// restore_visible call, and every unacked_restore_throttle-th call,
// starting with the first, asks the sweeper for a sweep. Requests made
// while one is pending coalesce, and one sweep runs at a time. A sweep:
//
//   - takes the unacked_mutex with SET NX PX and a lease of
//     min(unacked_mutex_expire, 10 s), renews the lease with a
//     compare-token PEXPIRE script before each batch and releases it with
//     a compare-and-delete script. A sweep that finds it held (by Go or
//     by Kombu) does nothing, as in Kombu. A Go sweeper that dies holding
//     the mutex holds back the other sweeps for at most the lease; a
//     Python sweeper takes it for the whole unacked_mutex_expire (300 s
//     by default) and does not renew it, so one killed mid-sweep still
//     holds back everyone's for that long.
//   - computes the deadline (now - visibility_timeout) once, then
//     repeats: ZREVRANGEBYSCORE unacked_index <deadline> -inf LIMIT 0 100
//     (Kombu's order, newest first), one HMGET of the records, routing in
//     Go as for restore_by_tag, and one Lua script that RPUSHes and
//     deletes only the tags whose score is still at most the deadline and
//     whose record is still the one read. A tag acked or delivered again
//     between the scan and the script is skipped: a sweep never restores
//     a message whose ack reached Redis first. Since every restore is an
//     RPUSH and the newest go first, the restored messages of a list are
//     consumed oldest first, in the order they were delivered.
//   - stops when nothing past the deadline is left, after
//     unacked_restore_limit tags (when set), when the lease was lost, on
//     an error, or when the connection closes (Close cancels it and
//     waits). When it found anything, it logs at Info how many it
//     restored, how many it skipped because they were acked, delivered
//     again or changed after it read them, and how many it dropped.
//
// A record that is not [envelope, exchange, routing_key] is logged and
// deleted with nothing pushed, as Kombu logs and drops it.
//
// # Many queues
//
// A command over every key costs O(keys) in Redis and in the writer: with
// 1000 queues and four priority steps, 4000 keys (about 120 KB) per pop,
// and the script walks the empty lists one RPOP at a time. With more than
// 16 consumed queues, the channel keeps a "hot" set of at most 8 queues
// that a recent pop or BRPOP found messages in; while no other queue is
// known to hold messages, the pop script goes over the hot queues' keys
// only (still in Kombu's order among them), and every 4th such pop (and
// the one after each BRPOP) is followed, in the same write, by EXISTS over
// the keys of the other ("cold") queues, a command cached until either set
// changes. When EXISTS counts a message, or a hot pop comes back short
// without one, the next pop goes over every key in Kombu's order, which
// serves the cold queue first since the busy one was rotated last. A queue
// leaves the hot set when a pop went past all its keys empty. BRPOP, when
// everything is empty, still waits on every key in Kombu's order.
//
// The difference from Kombu is one of latency, not of starvation: while a
// hot queue stays busy, a message published to a cold queue waits up to
// five pops (each up to the prefetch room) instead of being next. With 16
// queues or fewer every pop goes over every key, as before.
// Order within a pop, acknowledgement records and the wire format are
// unchanged, so Kombu producers and consumers on the same queues see no
// difference.
//
// # Compatibility notes
//
// Differences from Kombu, all deliberate: EXISTS (passive queue_declare)
// carries global_keyprefix, where Kombu forgets it; fanout queues consumed
// after the first subscription are subscribed at once (Kombu waits for a
// reconnect), and cancelling sends PUNSUBSCRIBE (Kombu sends UNSUBSCRIBE,
// which leaves the pattern subscribed); a restored message whose exchange
// routes nowhere goes back to the queue it was delivered from (Kombu drops
// it); restores push to the priority key of the message (Kombu main; 5.2.4
// used the base key); restore_by_tag and the sweep leave alone a record
// that changed after they read it, and the sweep holds the unacked_mutex
// as a renewed lease of at most 10 s (both above). A message that is not a Kombu envelope is delivered
// with Message.Err set and recorded under the SHA-1 of its bytes. The
// unacked_index score is the delivery time in whole seconds, rounded up
// (Kombu writes a float): Kombu's and this package's sweeps compare it
// with now - visibility_timeout, so a message comes back at most a second
// later, never earlier, and Redis inserts into a small index several
// times faster (lua.go gives the numbers).
//
// # Concurrency
//
// [Transport], [Conn] and [Channel] are safe for concurrent use, with the
// rules of transport.Channel: declarations, Publish, PublishBatch and Get
// block the caller for their round trips (from a hub callback they stall
// the loop meanwhile); Ack, Reject, Qos and Recover return at once.
// Deliveries and every piece of consumer state live on the hub goroutine.
// Locks: the transport's table of fanout bindings (written by BindQueue on
// any goroutine), each store's x-expires and auto_delete records
// (NewQueue), the executor's job queue, and the connection's channel set;
// each is commented where it is declared. Goroutines: one executor and
// one sweeper per connection, a dial goroutine while a hub socket
// connects, two per TLS hub socket; Conn.Close joins them all.
//
// # Errors
//
// Failures to reach Redis are *transport.BrokerError values of kind
// transport.KindConnection (transport.IsConnectionError), as Kombu's
// connection_errors; error replies are plain wrapped errors. A hub socket
// that fails reconnects by itself with backoff (100 ms doubling to 5 s) on
// hub timers, and its channel resubscribes and goes on consuming; the
// connection never gives up by itself. Malformed envelopes are delivered
// with Message.Err wrapping transport.ErrBadEnvelope.
package redis
