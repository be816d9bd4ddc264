package messaging

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// Exchange types, re-exported from transport.
const (
	Direct  = transport.Direct
	Topic   = transport.Topic
	Fanout  = transport.Fanout
	Headers = transport.Headers
)

// DeliveryMode is the AMQP delivery mode of a message.
type DeliveryMode uint8

// Delivery modes (Kombu's "transient" and "persistent").
const (
	// Transient messages may be lost when the broker restarts.
	Transient DeliveryMode = 1
	// Persistent messages are written to disk by brokers that can. It is
	// the default.
	Persistent DeliveryMode = 2
)

// String returns Kombu's name: "transient" or "persistent".
func (d DeliveryMode) String() string {
	switch d {
	case Transient:
		return "transient"
	case Persistent:
		return "persistent"
	}
	return fmt.Sprintf("DeliveryMode(%d)", uint8(d))
}

// Exchange declares an exchange: Kombu's Exchange as a value. It is data;
// the methods that do I/O take a context and a channel.
//
// Kombu's default for Durable is true. [NewExchange] applies it; a struct
// literal gets exactly what it says (Durable false unless set).
type Exchange struct {
	// Name of the exchange; "" is the default exchange, which is never
	// declared.
	Name string
	// Type is Direct, Topic, Fanout or Headers. Default (""): Direct.
	Type string
	// Durable exchanges survive a broker restart.
	Durable bool
	// AutoDelete deletes the exchange when its last queue is unbound.
	AutoDelete bool
	// Internal exchanges cannot be published to directly.
	Internal bool
	// Passive only checks that the exchange exists.
	Passive bool
	// DeliveryMode of messages published through this exchange by a
	// Producer, unless the publish says otherwise. Default (0): persistent.
	DeliveryMode DeliveryMode
	// Arguments are extra declaration arguments (alternate-exchange ...).
	Arguments map[string]any
	// NoDeclare skips the declaration (Kombu's no_declare).
	NoDeclare bool
}

// NewExchange returns an exchange with Kombu's defaults: durable, not
// auto-deleted. An empty kind means Direct.
func NewExchange(name, kind string) Exchange {
	if kind == "" {
		kind = Direct
	}
	return Exchange{Name: name, Type: kind, Durable: true}
}

// String is Kombu's "Exchange name(type)".
func (e Exchange) String() string {
	t := e.Type
	if t == "" {
		t = Direct
	}
	return fmt.Sprintf("Exchange %s(%s)", e.Name, t)
}

// CanCacheDeclaration reports whether a declaration may be skipped once
// done (Kombu's can_cache_declaration): not for auto-delete exchanges,
// which may vanish.
func (e Exchange) CanCacheDeclaration() bool { return !e.AutoDelete }

func (e Exchange) cacheKey() string { return "E|" + e.Name }

// skipDeclare is Kombu's rule: nothing to declare without a name, for an
// "amq." exchange (the broker's own), or with NoDeclare.
func (e Exchange) skipDeclare() bool {
	return e.NoDeclare || e.Name == "" || strings.HasPrefix(e.Name, "amq.")
}

// Declaration returns the transport declaration of e.
func (e Exchange) Declaration() transport.Exchange {
	t := e.Type
	if t == "" {
		t = Direct
	}
	return transport.Exchange{Name: e.Name, Type: t, Durable: e.Durable, AutoDelete: e.AutoDelete,
		Internal: e.Internal, Passive: e.Passive, Arguments: maps.Clone(e.Arguments)}
}

// Declare declares the exchange on ch. It does nothing for the default
// exchange, an "amq." exchange, or with NoDeclare (Kombu's rules).
func (e Exchange) Declare(ctx context.Context, ch transport.Declarer) error {
	if e.skipDeclare() {
		return nil
	}
	return ch.DeclareExchange(ctx, e.Declaration())
}

func (e Exchange) declareOn(ctx context.Context, ch transport.Declarer) error {
	return e.Declare(ctx, ch)
}

// DeleteOptions are the conditions of a deletion.
type DeleteOptions struct {
	// IfUnused deletes only an exchange without bindings, or a queue
	// without consumers.
	IfUnused bool
	// IfEmpty deletes only a queue without messages.
	IfEmpty bool
}

// Delete deletes the exchange.
func (e Exchange) Delete(ctx context.Context, ch transport.Declarer, opts DeleteOptions) error {
	return ch.DeleteExchange(ctx, e.Name, opts.IfUnused)
}

// Binding binds a queue to an exchange with a routing key (Kombu's
// binding), for queues bound to several exchanges.
type Binding struct {
	Exchange   Exchange
	RoutingKey string
	// Arguments of the binding (x-match and the header values for headers
	// exchanges).
	Arguments map[string]any
	// UnbindArguments are used by Unbind instead of Arguments when set.
	UnbindArguments map[string]any
}

// Queue declares a queue and how it is bound: Kombu's Queue as a value.
// The methods that do I/O take a context and a channel.
//
// Kombu's default for Durable is true. [NewQueue] applies it; a struct
// literal gets exactly what it says. Exclusive implies AutoDelete, as in
// Kombu, whatever AutoDelete says.
type Queue struct {
	// Name of the queue. Empty asks the broker for a generated name, which
	// Declare returns.
	Name string
	// Exchange and RoutingKey bind the queue when Bindings is empty and the
	// exchange has a name. A queue with the default exchange (the zero
	// Exchange) is bound to nothing, yet reached by publishing to exchange
	// "" with the queue's name as routing key.
	Exchange   Exchange
	RoutingKey string
	// Bindings bind the queue to several exchanges; when set, Exchange and
	// RoutingKey are not used for binding.
	Bindings []Binding
	// Durable queues survive a broker restart.
	Durable bool
	// Exclusive queues belong to the declaring connection; implies
	// AutoDelete.
	Exclusive bool
	// AutoDelete deletes the queue when its last consumer is cancelled.
	AutoDelete bool
	// NoAck is the default of consumers of this queue.
	NoAck bool
	// Expires deletes the queue after this long unused (x-expires, in
	// whole milliseconds). 0: never.
	Expires time.Duration
	// MessageTTL discards messages older than this (x-message-ttl, ms).
	// 0: no limit.
	MessageTTL time.Duration
	// MaxLength and MaxLengthBytes bound the queue (x-max-length,
	// x-max-length-bytes). 0: no limit (set the argument in
	// QueueArguments for a literal 0).
	MaxLength      int
	MaxLengthBytes int
	// MaxPriority enables priorities 0..MaxPriority (x-max-priority).
	MaxPriority int
	// Type is RabbitMQ's queue type (x-queue-type): [QueueClassic],
	// [QueueQuorum] or [QueueStream]. "": the broker's default (classic),
	// or the x-queue-type of QueueArguments. Quorum queues and streams
	// must be durable and neither exclusive nor auto-delete (the broker
	// refuses the declaration otherwise). See [QuorumQueue], [StreamQueue].
	Type string
	// DeliveryLimit (quorum queues, x-delivery-limit): a message returned
	// to the queue (rejected with requeue, or left unacked by a lost
	// consumer) more than this many times is dead-lettered, or dropped
	// without a dead-letter exchange. 0: no limit.
	DeliveryLimit int
	// DeadLetterExchange and DeadLetterRoutingKey say where rejected,
	// expired or over-limit messages go (x-dead-letter-exchange,
	// x-dead-letter-routing-key). A routing key without an exchange
	// dead-letters through the default exchange to the queue of that name.
	// "": not set (to dead-letter through the default exchange with the
	// message's own routing key, set x-dead-letter-exchange "" in
	// QueueArguments).
	DeadLetterExchange   string
	DeadLetterRoutingKey string
	// DeadLetterStrategy (quorum queues, x-dead-letter-strategy):
	// [DeadLetterAtMostOnce] (the broker's default) or
	// [DeadLetterAtLeastOnce].
	DeadLetterStrategy string
	// StreamOffset is where consumers of a stream start (the consumer
	// argument x-stream-offset): [StreamFirst], [StreamLast], [StreamNext],
	// an integer offset, a time.Time, or an interval string such as "1h".
	// nil: the broker's default (next). A consumer of a stream needs a
	// PrefetchCount and acknowledgements; [Consumer.Consume] says so
	// before the broker would close the channel.
	StreamOffset any
	// QueueArguments, BindingArguments and ConsumerArguments are passed to
	// the declaration, the binding and the consumer.
	QueueArguments    map[string]any
	BindingArguments  map[string]any
	ConsumerArguments map[string]any
	// Alias is an informational name (Kombu's alias).
	Alias string
	// NoDeclare skips declaring the queue, its exchange and its bindings.
	NoDeclare bool
}

// NewQueue returns a queue with Kombu's defaults (durable) bound to
// exchange with routingKey.
func NewQueue(name string, exchange Exchange, routingKey string) Queue {
	return Queue{Name: name, Exchange: exchange, RoutingKey: routingKey, Durable: true}
}

// String is Kombu's "<unbound Queue name -> exchange -> routing_key>" form,
// without the "unbound".
func (q Queue) String() string {
	if len(q.Bindings) > 0 {
		return fmt.Sprintf("Queue %s -> %d bindings", q.Name, len(q.Bindings))
	}
	return fmt.Sprintf("Queue %s -> %s -> %s", q.Name, q.Exchange, q.RoutingKey)
}

// Arguments returns the declaration arguments: QueueArguments plus
// x-expires, x-message-ttl (milliseconds), x-max-length,
// x-max-length-bytes and x-max-priority for the fields that are set
// (Kombu's prepare_queue_arguments), and the queue-type arguments of Type,
// DeliveryLimit and the dead-letter fields (x-queue-type,
// x-delivery-limit, x-dead-letter-exchange, x-dead-letter-routing-key,
// x-dead-letter-strategy).
func (q Queue) Arguments() map[string]any {
	args := maps.Clone(q.QueueArguments)
	set := func(k string, v int64) {
		if v == 0 {
			return
		}
		if args == nil {
			args = map[string]any{}
		}
		args[k] = v
	}
	set("x-expires", q.Expires.Milliseconds())
	set("x-message-ttl", q.MessageTTL.Milliseconds())
	set("x-max-length", int64(q.MaxLength))
	set("x-max-length-bytes", int64(q.MaxLengthBytes))
	set("x-max-priority", int64(q.MaxPriority))
	return q.typeArguments(args)
}

// Declaration returns the transport declaration of the queue itself.
func (q Queue) Declaration() transport.Queue {
	return transport.Queue{Name: q.Name, Durable: q.Durable, Exclusive: q.Exclusive,
		AutoDelete: q.AutoDelete || q.Exclusive, Arguments: q.Arguments()}
}

// CanCacheDeclaration reports whether a declaration may be skipped once
// done (Kombu's can_cache_declaration): not for auto-delete (or exclusive)
// queues, nor for queues that expire.
func (q Queue) CanCacheDeclaration() bool {
	if q.AutoDelete || q.Exclusive {
		return false
	}
	_, expires := q.Arguments()["x-expires"]
	return !expires
}

func (q Queue) cacheKey() string { return "Q|" + q.Name }

// bindings returns the bindings Declare creates.
func (q Queue) bindings() []Binding {
	if len(q.Bindings) > 0 {
		return q.Bindings
	}
	if q.Exchange.Name == "" {
		return nil
	}
	return []Binding{{Exchange: q.Exchange, RoutingKey: q.RoutingKey, Arguments: q.BindingArguments}}
}

// Declare declares the exchange(s), the queue and its bindings, in Kombu's
// order, and returns the broker's answer for the queue; its Name is the
// generated name when q.Name is empty. With NoDeclare it does nothing.
func (q Queue) Declare(ctx context.Context, ch transport.Declarer) (transport.QueueInfo, error) {
	if q.NoDeclare {
		return transport.QueueInfo{Name: q.Name}, nil
	}
	if len(q.Bindings) == 0 {
		if err := q.Exchange.Declare(ctx, ch); err != nil {
			return transport.QueueInfo{}, err
		}
	}
	info, err := ch.DeclareQueue(ctx, q.Declaration())
	if err != nil {
		return info, err
	}
	if info.Name == "" {
		info.Name = q.Name
	}
	for _, b := range q.bindings() {
		if len(q.Bindings) > 0 {
			if err := b.Exchange.Declare(ctx, ch); err != nil {
				return info, err
			}
		}
		if err := ch.BindQueue(ctx, transport.Binding{Queue: info.Name, Exchange: b.Exchange.Name,
			RoutingKey: b.RoutingKey, Arguments: maps.Clone(b.Arguments)}); err != nil {
			return info, err
		}
	}
	return info, nil
}

func (q Queue) declareOn(ctx context.Context, ch transport.Declarer) error {
	_, err := q.Declare(ctx, ch)
	return err
}

// DeclareQueue declares only the queue (Kombu's queue_declare); with
// passive it only asks for its counts, and a missing queue gives an error
// matching transport.ErrNotFound.
func (q Queue) DeclareQueue(ctx context.Context, ch transport.Declarer, passive bool) (transport.QueueInfo, error) {
	d := q.Declaration()
	d.Passive = passive
	return ch.DeclareQueue(ctx, d)
}

// Bind creates the queue's bindings without declaring anything.
func (q Queue) Bind(ctx context.Context, ch transport.Declarer) error {
	for _, b := range q.bindings() {
		if err := q.BindTo(ctx, ch, b); err != nil {
			return err
		}
	}
	return nil
}

// BindTo binds the queue with one more binding (Kombu's bind_to).
func (q Queue) BindTo(ctx context.Context, ch transport.Declarer, b Binding) error {
	return ch.BindQueue(ctx, transport.Binding{Queue: q.Name, Exchange: b.Exchange.Name,
		RoutingKey: b.RoutingKey, Arguments: maps.Clone(b.Arguments)})
}

// UnbindFrom removes one binding (Kombu's unbind_from).
func (q Queue) UnbindFrom(ctx context.Context, ch transport.Declarer, b Binding) error {
	args := b.UnbindArguments
	if args == nil {
		args = b.Arguments
	}
	return ch.UnbindQueue(ctx, transport.Binding{Queue: q.Name, Exchange: b.Exchange.Name,
		RoutingKey: b.RoutingKey, Arguments: maps.Clone(args)})
}

// Unbind removes the queue's bindings (Kombu's queue_unbind).
func (q Queue) Unbind(ctx context.Context, ch transport.Declarer) error {
	var errs []error
	for _, b := range q.bindings() {
		errs = append(errs, q.UnbindFrom(ctx, ch, b))
	}
	return errors.Join(errs...)
}

// Purge removes the queue's ready messages and returns how many.
func (q Queue) Purge(ctx context.Context, ch transport.Declarer) (int, error) {
	return ch.PurgeQueue(ctx, q.Name)
}

// Delete deletes the queue and returns how many messages it held.
func (q Queue) Delete(ctx context.Context, ch transport.Declarer, opts DeleteOptions) (int, error) {
	return ch.DeleteQueue(ctx, q.Name, opts.IfUnused, opts.IfEmpty)
}

// Declaration is an entity a Connection can declare and cache: an
// [Exchange] or a [Queue] (or a pointer to one).
type Declaration interface {
	// CanCacheDeclaration reports whether a declaration may be skipped
	// once done.
	CanCacheDeclaration() bool
	cacheKey() string
	declareOn(ctx context.Context, ch transport.Declarer) error
}

var (
	_ Declaration = Exchange{}
	_ Declaration = Queue{}
)

// MaybeDeclare declares e on ch (the default channel when ch is nil) unless
// this connection already declared an entity of that kind and name since
// it (re)connected and e's declaration can be cached (Kombu's
// maybe_declare). It reports whether it declared. Entities are known by
// kind and name only ("E|name", "Q|name"), as in Kombu. The cache is
// cleared on every reconnection and on Close.
func (c *Connection) MaybeDeclare(ctx context.Context, ch transport.Declarer, e Declaration) (bool, error) {
	key := e.cacheKey()
	cacheable := e.CanCacheDeclaration()
	if ch == nil {
		// First, so that a broken connection is replaced (and the cache
		// cleared) before the cache is read.
		def, err := c.DefaultChannel(ctx)
		if err != nil {
			return false, err
		}
		ch = def
	}
	c.mu.Lock()
	_, done := c.declared[key]
	done = done && c.aliveLocked()
	// A reconnection during the declaration may reach a broker that lost
	// it: cache only if the connection is the one the declaration began on.
	gen := c.gen
	c.mu.Unlock()
	if cacheable && done {
		return false, nil
	}
	if err := e.declareOn(ctx, ch); err != nil {
		return false, err
	}
	if q, ok := asQueue(e); ok {
		c.noteQueue(q)
	}
	if cacheable {
		c.mu.Lock()
		if c.gen == gen {
			c.declared[key] = struct{}{}
		}
		c.mu.Unlock()
	}
	return true, nil
}
