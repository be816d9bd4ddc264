// Package redis is Kombu's Redis transport (kombu.transport.redis) on the
// hub: the same keys, JSON envelopes, binding sets, priority lists, PUB/SUB
// fanout and unacked hash as Python's Kombu, so that a Go service and a
// Kombu or Celery service share one Redis and consume each other's
// messages, and either side restores what the other left unacknowledged.
//
// Create a transport with [NewWithOptions] from typed [Options], or with
// [New] from a transport.Config (redis://, rediss://, redis+socket:// and
// sentinel:// forms, Kombu's transport options), which [ParseConfig] reads
// into Options; [Transport.Dial] returns a connection whose channels are
// Kombu's virtual channel over this package's store, plus
// [Channel.PublishBatch].
//
// # Options
//
// Every Kombu Redis transport option is a typed field of [Options], whose
// documentation gives the Kombu key and the default. ParseConfig is the
// one place that reads Kombu's untyped map, and it refuses what it does
// not know: a misspelt key (visibilty_timeout) is a
// *transport.OptionError that names it and lists the valid ones, where
// Kombu would ignore it and run with its default. Python-only options
// (socket_keepalive_options, min_other_sentinels), login_method, and the
// sentinel options outside a sentinel URL are refused with the reason;
// confirm_publish=true is accepted (a publish returns once Redis stored
// the message) and false refused. retry_on_timeout defaults to true
// (go-redis retries a command that timed out up to 3 times; redis-py's
// default is false); false turns the retries off.
//
// # Design
//
// Two kinds of connections serve a channel:
//
//   - Request/response commands go through go-redis: publishing (LPUSH to
//     the priority list, PUBLISH for fanout), bindings (SADD, SMEMBERS),
//     declarations, purge, size, basic_get (one script pops and records);
//     on an executor goroutine of the connection, the acknowledgements the
//     consume socket does not carry (ZREM + HDEL, coalesced into one
//     pipeline per batch), restores (restore_by_tag, one atomic script),
//     lease renewals and the unacked records of fanout messages; and, on a
//     sweeper goroutine of the connection, the visibility-timeout sweep
//     (restore_visible, with the conversion of dead consumers' processing
//     lists; see below). The hub goroutine never waits
//     for go-redis, except when a channel closes.
//   - Each consuming channel owns up to two sockets that go-redis never
//     touches, registered in the hub's poller (Kombu's MultiChannelPoller,
//     one per connection): the consume socket (the wait and the consume
//     script, below) and one for PSUBSCRIBE (fanout queues). They are
//     dialled with net.Dialer on a short-lived goroutine, and the hub takes
//     the descriptor over (a duplicate through SyscallConn().Control; the
//     net.Conn is then closed). The handshake (AUTH, SELECT, CLIENT
//     SETNAME, HELLO 3 and CLIENT TRACKING on the consume socket, CLIENT
//     ID, SCRIPT LOAD) is pipelined on the socket. Writes are flushed at
//     once, and a writer is registered only while bytes wait; replies are
//     parsed by internal/resp from whatever bytes arrived and dispatched
//     straight to the channel (Deliver) and its consumers' callbacks. A
//     descriptor is always removed from the hub before it is closed, and
//     every registration carries a generation so that a stale event for a
//     reused descriptor number is dropped.
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
// # Consuming: no message only in a socket or in memory
//
// Kombu pops with BRPOP and records the message (MULTI: ZADD unacked_index,
// HSET unacked) once Redis has handed it over: a consumer that dies, or a
// connection that breaks, between the two loses the message. Here a
// message is, at every moment, in its list, in Kombu's unacked records, or
// in a list of this consumer's that a live consumer restores. The consume
// socket alternates between two commands (pump.go):
//
//   - The consume script (lua_consume.go), while some consumed key may hold
//     messages: in one atomic step it pops up to the channel's free
//     prefetch room from those keys, in Kombu's order (step-major, then
//     queue, rotated by the queue_order_strategy), writes each message's
//     unacked record (HSET unacked <tag> '[<envelope>, <exchange>,
//     <routing_key>]', ZADD unacked_index <now> <tag>), and deletes the
//     records of the acks that came since the last script. Every message
//     it returns is recorded before its callback runs.
//   - The wait, when no key is known to hold messages: BLMOVE (BRPOPLPUSH
//     before Redis 6.2) from one key, the base key of the queue last
//     delivered from, into this consumer's processing list
//     (<unacked_key>:processing:<id>), with brpop_timeout as its timeout.
//     Redis moves the message and replies in one step, so the callback runs
//     one round trip after the publish (as with a plain BRPOP loop) while
//     the message is still in Redis; the next script, sent right after the
//     delivery, records it and empties the list.
//
// The other consumed keys (other queues, other priority steps) are
// watched with Redis's client-side-caching invalidation messages (RESP3,
// CLIENT TRACKING ON NOLOOP OPTIN): after a script emptied keys, an EXISTS
// over them (after CLIENT CACHING yes) tracks them again, and a push to one
// sends an "invalidate" message on the consume socket. The key then counts
// as holding messages, and a wait in flight is ended with CLIENT UNBLOCK
// (sent through the executor) so that the script pops it. A push between
// the script and the EXISTS is counted by the EXISTS. (OPTIN keeps what the
// scripts read untracked: Redis 7.0 tracks every key of a script at each
// read inside it, which costs O(keys²) with many queues.)
// No key is polled, and an idle channel costs one wait per brpop_timeout.
// Several consumers of one queue all block on its base key, so a message
// wakes one of them; a push to a key another consumer waits on, and this
// one tracks, also wakes this one (an empty pop at worst). When the server
// refuses HELLO 3 or CLIENT TRACKING (Redis older than 6, or an ACL), the
// other keys are polled once per brpop_timeout instead, which is logged.
//
// Leases. The processing list is what makes BLMOVE safe: every consuming
// channel is in a registry zset (<unacked_key>:consumers, scored with the
// time its lease expires), registered by the consume socket's handshake
// before its first BLMOVE and renewed three times per lease by a hub
// timer; a lease lasts the visibility timeout, between 2 and 10 seconds.
// The visibility sweep of any live consumer turns the processing list of
// a consumer whose lease expired into
// unacked records, scored with that last renewal, which the sweep then
// restores like any other; Python Kombu's sweep restores them too once
// they are records. A clean close records what the list holds and leaves
// the registry.
//
// Lost replies. A connection that breaks with a reply unread loses no
// message: a BLMOVE's message is in the processing list, and the first
// script on the new connection records and delivers it; a script's
// messages are recorded, and each script that hands messages over also
// writes their tags to this consumer's delivering hash
// (<unacked_key>:delivering:<id>) with its sequence number, so the first
// script on the new connection finds the tags of a reply that never came
// and delivers them from their records. Acks that were on their way are
// sent again.
//
// Acknowledgements ride with the next consume script when one is about to
// be sent, and otherwise (the wait blocks) go through the executor in one
// pipeline. A slot of the prefetch window is free only once the ack's
// record is gone, so the unacked records of a consumer stay within its
// window (plus the message a wait may have handed over) however slow
// Redis is: acks never queue behind restores.
//
// Messages handed over for a queue no longer consumed, and those in flight
// when the channel closes, go back to the head of their list (RPUSH) and
// their records are deleted, in one transaction.
//
// Without ack emulation (ack_emulation=false), the consume socket does
// what Kombu does: BRPOP over every key, the message delivered at once and
// recorded nowhere (at most once), and the script pops without records
// while messages are known to wait.
//
// Fanout (PUB/SUB) is at most once, in Kombu and here: a message published
// while no channel subscribes, or while a subscriber's connection is down,
// is not delivered; one delivered is recorded (unless a no-ack consumer
// takes it) and restorable like any other.
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
// The script visits only the keys that may hold messages: those an
// invalidation named, the key a pop stopped at, and, once, every key of a
// queue newly consumed (to track it), in Kombu's order and only up to the
// first key known to hold messages (the script would not get past it). A
// channel consuming 1000 queues with messages on one pops from that one
// key; a message pushed to any other is noticed at once, with no periodic
// scan.
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
// times faster (lua.go gives the numbers). Keys of this package's own,
// beside Kombu's: <unacked_key>:consumers (a zset of consumer leases),
// <unacked_key>:processing:<id> (a list) and
// <unacked_key>:delivering:<id> (a hash), one pair per consuming channel,
// deleted when it closes or, after it died, by a live consumer's sweep.
// Consuming needs Redis 6.2 for BLMOVE and CLIENT TRACKING; older servers
// get BRPOPLPUSH and, before 6.0, polling of the keys not waited on.
//
// # Redis Cluster
//
// redis+cluster://host:port[,host:port...] ([Options].ClusterAddrs) reaches
// a Redis Cluster. Kombu has no cluster support, so the key layout is this
// package's own (cluster.go) and Python Kombu cannot share the queues:
// every key of queue Q carries the hash tag {Q} (its lists "{Q}" and
// "{Q}<sep><step>", and its own unacked hash, index, mutex, consumer
// registry, processing lists and delivering hashes, "{Q}:unacked" and so
// on, after global_keyprefix), so that each queue lives in one slot and
// every script above stays single-slot and atomic, while queues spread
// over the masters. Binding sets are plain keys; fanout keeps PUBLISH and
// PSUBSCRIBE, which a cluster forwards to every node (sharded pub/sub takes
// no patterns). A restore puts the message back into the queue whose
// records held it (Kombu routes it through its exchange again). Requests
// go through go-redis's cluster client. Each queue a channel consumes gets
// a sub-store running the protocol above on that queue; the sub-stores
// share the channel's prefetch window. Their consume sockets do not have a
// connection each: the consume sockets of every channel of the connection
// whose queues live on one master share one connection to it (a node
// socket, nodesock.go), so a connection holds one consume connection per
// master however many queues it consumes. A blocking command waits on one
// slot's keys only and would hold the connection its master's other queues
// share, so on a cluster nothing blocks: every consumed key is tracked
// (CLIENT TRACKING), a push brings Redis's invalidation, and the consume
// script pops and records what came, within the window. Without leases
// (nothing moves a message into a processing list), each delivering hash
// expires visibility_timeout plus a lease's life after its last write. The
// node socket fails as one (the master died: its members dial the master
// CLUSTER SLOTS names then, with backoff); a member whose script gets
// MOVED, ASK or CLUSTERDOWN fails alone; and the slot map is read again
// once per watchdog tick, so that a member whose queue's slot moved while
// it was idle follows it. Idle queues thus cost their sweeps (below) and,
// per connection, a CLUSTER SLOTS per watchdog tick (brpop_timeout, at
// least 1 s) and a health-check PING per node socket per
// health_check_interval. A node that refuses CLIENT TRACKING (an ACL) has
// its members poll their keys once per tick instead. The visibility sweep, with the conversion of dead
// consumers' processing lists before it, runs over every queue the
// connection has consumed, each on its own master (the conversion at the
// sweep's pace, not at every tick as on one node). PublishBatch sends one
// pipeline per master, written to all of them before any reply is read,
// and sends again what a MOVED, ASK or failed connection left undone
// (cluster_publish.go). Asynchronous replication loses what a master
// stored and did not pass on before it died: with publish_wait_replicas=N
// ([Options].PublishWaitReplicas) a Publish returns only once N replicas
// have the message (WAIT; PublishBatch: one WAIT at the end of each node's
// pipeline), and is an error otherwise.
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
// connects, one while a cluster connection reads the slot map for its
// node sockets (checkSlots), two per TLS hub socket; Conn.Close joins
// them all.
//
// # Errors
//
// Failures to reach Redis are *transport.BrokerError values of kind
// transport.KindConnection (transport.IsConnectionError), as Kombu's
// connection_errors; error replies are plain wrapped errors. A hub socket
// that fails reconnects by itself with backoff (100 ms doubling to 5 s, 1 s in a cluster) on
// hub timers, and its channel resubscribes and goes on consuming; the
// connection never gives up by itself. Malformed envelopes are delivered
// with Message.Err wrapping transport.ErrBadEnvelope.
package redis
