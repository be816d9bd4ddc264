package channel

import (
	"context"

	"github.com/kombu-go/kombu/transport"
)

// Row is one row of an exchange's binding table: Kombu's
// (routing_key, pattern, queue) triple.
//
// Pattern depends on the exchange type:
//   - direct, fanout: empty;
//   - topic: [TopicPattern] of RoutingKey, Kombu's regular expression (for
//     example "^a\..*?[^\.]\.c$" for "a.*.c");
//   - headers: the binding arguments as compact JSON with sorted keys (see
//     [HeadersPattern]); Kombu has no headers exchange, so this form is ours.
//
// On Redis a row is the member RoutingKey+SEP+Pattern+SEP+Queue of the set
// _kombu.binding.<exchange>; the strings are on the wire and must be written
// and read back byte for byte.
type Row struct {
	RoutingKey string
	Pattern    string
	Queue      string
}

// Binding is a row together with the exchange it belongs to and that
// exchange's type as this process knows it (Kombu's exchange types are
// process-local). Redis records the queues bound to fanout exchanges from
// Type (Kombu's _fanout_queues).
type Binding struct {
	Exchange string
	// Type is transport.Direct, Topic, Fanout or Headers.
	Type string
	Row
}

// Op says how a delivery is settled; see [Settlement].
type Op uint8

const (
	// OpAck: the delivery was acknowledged. The store forgets it (Redis: ZREM
	// unacked_index + HDEL unacked).
	OpAck Op = iota + 1
	// OpDrop: the delivery was rejected without requeue. The store forgets it
	// (Redis: the same ZREM + HDEL as an ack).
	OpDrop
	// OpRequeue: the delivery was rejected with requeue. The store puts the
	// message back at the END of its queue, marked redelivered (Redis:
	// restore_by_tag(leftmost=True), an LPUSH; memory: append).
	OpRequeue
	// OpRestore: the delivery is given back on Close or Recover (Kombu's
	// restore_unacked). The store puts the message back where it is consumed
	// NEXT, marked redelivered (Redis: restore_by_tag, an RPUSH; memory:
	// push to the front).
	OpRestore
)

// String returns the name of the operation.
func (o Op) String() string {
	switch o {
	case OpAck:
		return "ack"
	case OpDrop:
		return "drop"
	case OpRequeue:
		return "requeue"
	case OpRestore:
		return "restore"
	}
	return "invalid"
}

// Settlement is one ack, reject or restore handed to [Store.Settle].
type Settlement struct {
	Op  Op
	Tag string
	// Message is the delivered message this channel holds for Tag, with its
	// DeliveryInfo filled in (Exchange, RoutingKey, Queue, DeliveryTag,
	// Redelivered). It is nil when the channel does not hold the tag (an ack
	// of a tag delivered elsewhere, or acked twice): Kombu's Redis QoS still
	// settles such a tag by name (any process may ack any tag), other stores
	// ignore it. OpRestore always has a Message.
	Message *transport.Message
}

// Store is the broker-specific half of a virtual channel: what Kombu's
// virtual Channel delegates to its _put, _get, _size, _purge, _delete,
// _new_queue, _has_queue, get_table, _queue_bind and _put_fanout, plus the
// QoS hooks of Redis' ack emulation. The channel does everything else:
// exchange types and routing, the process-local exchange and binding
// state ([State]), consumers, the prefetch window, delivery tags, the
// unacknowledged map.
//
// A Store serves exactly one [Channel]. The transport creates the store,
// then the channel with [New], then hands the *Channel to the store if the
// store needs it (pushing stores call [Channel.Deliver], pulling stores call
// [Channel.Wake]).
//
// # Goroutines
//
// Two groups of methods run in two places:
//
//   - The request methods (NewQueue, HasQueue, Size, Purge, DeleteQueue,
//     Table, Bind, Put, PutFanout, Get) are called on the goroutine of the
//     caller of the corresponding [Channel] method: any goroutine, several
//     at once, and possibly the hub goroutine itself (a consumer callback
//     that publishes). They may block on I/O until ctx ends. They must be
//     safe for concurrent use.
//   - The consumer-side methods (Consuming, Resume, Settle, Close, and
//     [Puller.Pull]) are called by the hub's owner only, never
//     concurrently with each other or with the hub's loop work. The owner
//     is the hub goroutine, with one exception: when nobody drives the hub,
//     a goroutine that acks, rejects, gets, cancels or sets Qos applies the
//     channel's queued requests itself while it holds the hub through
//     hub.TryOwn, so Settle and Consuming may run there. The hub-only
//     methods are allowed there as on the hub; work they Post or schedule
//     with CallSoon runs when the hub is next driven. Resume and Pull,
//     which lead to deliveries and so to consumer callbacks, always run on
//     a driver.
//     These methods must not block on the network for long: a store that
//     needs a round trip should pipeline it, or hand it to a goroutine it
//     owns and report back with hub.Post.
//
// # Errors
//
// Return errors that match the transport sentinels where one applies
// (transport.ErrEmpty from Get, transport.ErrPreconditionFailed,
// transport.IsConnectionError for a broken connection). The channel wraps
// and returns them to its caller unchanged in meaning.
//
// # Messages
//
// Messages handed to Put, PutFanout and Settle belong to the channel's
// caller in part: the *Message struct itself is a copy made by the channel
// for this call (the store may keep and modify it), but Body, Headers and
// Properties.Extra alias the publisher's values. A store that keeps them
// after the call returns (memory) must copy them; a store that serializes
// them (Redis) need not. DeliveryInfo.Exchange, RoutingKey and DeliveryTag
// are set by the channel at publish (Kombu's delivery_info and the uuid4
// delivery_tag); a store that serializes the message must keep them.
//
// Messages a store returns from Get or Pull, or passes to
// [Channel.Deliver], become the channel's: the store must not touch them
// afterwards. Their DeliveryInfo must carry Exchange, RoutingKey,
// DeliveryTag and Redelivered as stored; the channel sets Queue and
// ConsumerTag. A message the store could not decode is still returned, with
// Err set (see transport.Message).
type Store interface {
	// NewQueue creates the queue if it does not exist (Kombu's _new_queue).
	// Called for every non-passive queue declaration (after the channel has
	// picked a name for an unnamed queue), and for the dead-letter queue
	// before a message is routed to it. Redis: record auto_delete and
	// x-expires, nothing on the wire; memory: create the queue.
	NewQueue(ctx context.Context, q transport.Queue) error
	// HasQueue reports whether the queue exists (passive declaration).
	// Redis: EXISTS over the priority keys, so an empty queue does not
	// exist.
	HasQueue(ctx context.Context, queue string) (bool, error)
	// Size returns the number of ready messages in the queue (0 for a queue
	// that does not exist).
	Size(ctx context.Context, queue string) (int, error)
	// Purge removes every ready message of the queue and returns how many
	// there were.
	Purge(ctx context.Context, queue string) (int, error)
	// DeleteQueue deletes the queue and returns how many ready messages it
	// held. bindings are the queue's bindings this process knows of (Redis
	// SREMs their members and, as Kombu, deletes nothing when there are
	// none). With ifUnused, a store that knows the queue's consumers fails
	// with an error matching transport.ErrPreconditionFailed when it has
	// any; Redis ignores ifUnused as Kombu does. The channel handles ifEmpty
	// itself (with Size) and removes the bindings from [State] afterwards.
	DeleteQueue(ctx context.Context, queue string, bindings []Binding, ifUnused bool) (int, error)

	// Table returns the binding table of a named exchange, read at every
	// publish to a direct, topic or headers exchange (Kombu's get_table).
	// Redis: SMEMBERS _kombu.binding.<exchange>, live, never cached; memory:
	// [State.Table]. The channel only reads the result, so a store may return
	// a shared slice that it never modifies.
	Table(ctx context.Context, exchange string) ([]Row, error)
	// Bind records a new binding (Kombu's _queue_bind), after the channel
	// has added it to [State]. It is not called when State already holds the
	// binding. Redis: SADD _kombu.binding.<exchange> member; memory: nothing.
	// There is no Unbind: Kombu's queue_unbind changes only the local state,
	// and the Redis member stays.
	Bind(ctx context.Context, b Binding) error

	// Put stores m at the back of queue (Kombu's _put). Redis: LPUSH to the
	// priority key of the queue (see [Priority]); memory: append, creating
	// the queue if it does not exist.
	Put(ctx context.Context, queue string, m *transport.Message) error
	// PutFanout delivers m to every queue bound to the fanout exchange
	// (Kombu's _put_fanout) and returns how many received it, when the store
	// knows (-1 when not). Redis: PUBLISH to the fanout channel (at most once,
	// live subscribers only; the reply is the subscriber count); memory: a
	// copy stored in every bound queue. The channel does not read the
	// binding table for fanout exchanges.
	PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error)
	// Get takes one message from the queue (Kombu's _get, basic_get), or
	// returns an error matching transport.ErrEmpty. Unless noAck, the
	// channel then adds the message to its unacknowledged map; Redis writes
	// its unacked record here, before returning (Kombu's QoS.append).
	Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error)

	// Consuming tells the store which queues the channel consumes from:
	// every queue with at least one consumer, in the order they were first
	// consumed, without duplicates. It is called on the hub goroutine each
	// time that set changes, including with an empty list when the last
	// consumer is cancelled and when the channel closes. The slice is only
	// valid during the call.
	//
	// A pushing store (Redis) starts or stops reading the queues here
	// (BRPOP, PSUBSCRIBE for the queues it knows to be bound to fanout
	// exchanges) and from then on hands messages to [Channel.Deliver],
	// staying within [Channel.Room]. When called with an empty list on
	// close, a store with a pop in flight should finish it and Deliver the
	// message (the channel then requeues it, as Kombu's close does). A
	// pulling store ([Puller]) records which queues should [Channel.Wake]
	// the channel when a message arrives.
	Consuming(queues []string)
	// Resume is called on the hub goroutine when the prefetch window
	// reopens: after acknowledgements made room in a full window, or after
	// Qos changed the window. A pushing store that stopped reading because
	// [Channel.Room] was 0 starts again (a level-triggered socket left
	// registered while the window is full spins the loop). Pulling stores
	// may ignore it: the channel pulls by itself.
	Resume()
	// Settle applies a batch of settlements on the hub goroutine, in the
	// order the application made them; restores (OpRestore) come in LIFO
	// order, most recent delivery first, as in Kombu's restore_unacked.
	// The channel hands over everything that accumulated since the last
	// batch in one call, so that a network store can pipeline it. The slice
	// and its elements are only valid during the call. An error is logged
	// by the channel (and returned from Close).
	Settle(batch []Settlement) error
	// Close releases the store on the hub goroutine, after the channel has
	// cancelled its consumers (Consuming with an empty list) and settled or
	// restored its unacknowledged messages. Called once. Redis removes its
	// sockets from the hub and closes its clients here. Work that finishes
	// off the hub is waited for in [CloseWaiter], not here.
	Close() error
}

// NoAckTaker is implemented by pushing stores that keep a record of a
// message until it is settled (Redis: its unacked record, under the
// message's delivery tag). When a no-ack consumer takes a message,
// [Channel.Deliver] calls TakenNoAck before the consumer's callback runs:
// the message is settled as it is handed over, so the store drops its
// record, and a callback that panics cannot leave the record behind to be
// delivered again. Hub goroutine.
type NoAckTaker interface {
	TakenNoAck(m *transport.Message)
}

// CloseWaiter is implemented by stores whose Close leaves work running off
// the hub (Redis: the restores and acknowledgements its executor still
// holds). Channel.Close calls WaitClose on its own goroutine once Close has
// returned on the hub, so the loop keeps serving everything else while
// the broker is slow or unreachable. Called once; its error is returned
// from Channel.Close.
type CloseWaiter interface {
	WaitClose() error
}

// Puller is implemented by stores the channel pulls messages from (memory),
// instead of having them pushed through [Channel.Deliver] (Redis).
//
// The channel pulls on the hub goroutine when [Channel.Wake] was called,
// when a consumer starts, and when room opens in the prefetch window. It
// visits its consumed queues with a [FairCycle] and asks each for at most as
// many messages as the window has room for.
type Puller interface {
	// Pull moves up to len(dst) ready messages of queue, oldest first, into
	// dst and returns how many it moved. It must not block. The messages
	// become the channel's (see [Store], Messages).
	Pull(queue string, dst []*transport.Message) int
}
