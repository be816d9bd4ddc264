package messaging

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// Callback receives a decoded body and its message. It runs on the hub
// goroutine and must not block: hand slow work to another goroutine (see
// [Workers]) and settle the message from there.
type Callback func(body any, m *Message)

// DefaultTagPrefix prefixes consumer tags when ConsumerOptions.TagPrefix is
// empty. (Kombu's default prefix is the string "None", giving tags "None1",
// "None2" ...; this port uses a readable one.)
const DefaultTagPrefix = "kombu-go-"

// defaultAccept is the accept list of consumers that name none: JSON,
// text/plain and raw bytes (application/data). Never modified.
var defaultAccept = []string{"json", "text", "raw"}

// tagCounter numbers consumer tags for the whole process, as Kombu's
// itertools.count does, so tags never repeat on a connection.
var tagCounter atomic.Uint64

// ConsumerOptions configure a [Consumer] (Kombu's Consumer arguments).
type ConsumerOptions struct {
	// Queues to consume from.
	Queues []Queue
	// Channel to consume on. Default: the connection's default channel
	// (followed across reconnections by Consume).
	Channel transport.Channel
	// NoAck consumes without acknowledgements: messages count as settled
	// on delivery. Default: false, or the queue's NoAck.
	NoAck bool
	// NoDeclare turns off declaring the queues (with their exchanges and
	// bindings) before consuming (Kombu's auto_declare=False).
	NoDeclare bool
	// Callbacks receive each decoded message, in order.
	Callbacks []Callback
	// OnMessage, when set, receives each message instead of Callbacks,
	// undecoded (Kombu's on_message).
	OnMessage func(m *Message)
	// OnDecodeError receives messages that cannot be decoded (malformed
	// envelope, failed decompression, refused content type, bad body),
	// with a *DecodeError; the handler settles the message. It runs on the
	// hub goroutine. Default: DeadLetterQueue when it is set; otherwise the
	// message is rejected (not requeued: AMQP dead-letters it if the queue
	// has a dead-letter exchange, Redis drops it), the error is logged at
	// level Error with the queue and delivery tag, and returned by the
	// next DrainEvents. Every decode error is counted (DecodeErrors).
	// (Kombu, without on_decode_error, raises from drain_events and leaves
	// the message unacknowledged; its ConsumerMixin logs and acks.)
	OnDecodeError func(m *Message, err error)
	// DeadLetterQueue, when set and OnDecodeError is not, keeps what
	// cannot be decoded: each such message is published, off the hub, to
	// the queue of this name (declared durable on first use; through the
	// default exchange) as a Kombu message whose body is the bytes as
	// received, with content type application/data, its headers and
	// properties, and the error and its origin in the x-decode-error and
	// x-original-* headers (HeaderDecodeError ...); then it is
	// acknowledged. If publishing fails it is requeued. Default: none.
	DeadLetterQueue string
	// Accept lists the serializer names or content types the consumer
	// decodes (Kombu's accept). Default (nil): json, text (text/plain) and
	// raw (application/data). (Kombu's default admits every enabled
	// serializer; name them here to accept more, e.g. "msgpack".) An empty non-nil list accepts only application/data and
	// application/text. Unknown names are an error (ErrNotInstalled).
	Accept []string
	// PrefetchCount bounds the unacknowledged deliveries of the channel
	// (basic.qos), applied before consuming. Default: 0, no limit.
	PrefetchCount int
	// TagPrefix prefixes the consumer tags, followed by a process-wide
	// counter. Default: DefaultTagPrefix.
	TagPrefix string
}

// Consumer consumes from a set of queues and hands the messages to
// callbacks on the hub goroutine (Kombu's Consumer). Create one with
// [NewConsumer], start it with Consume, and drive deliveries with
// Connection.DrainEvents or by running the hub.
//
// A Consumer is also the handle of its consuming (compare nats.go's
// ConsumeContext): Close stops its deliveries, Drain stops them and waits,
// within a deadline, for the callbacks running and the messages they
// handed on (to a [Workers] pool, say) to be settled, and Done and Err say
// when and why it stopped consuming:
//
//	if err := consumer.Consume(ctx); err != nil { ... }
//	go h.Run(ctx) // or conn.DrainEvents in a loop
//	select {
//	case <-consumer.Done(): // the connection was lost or closed, or the broker cancelled it
//		log.Print(consumer.Err()) // then Consume again to revive it, or Close
//	case <-shutdown:
//		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//		defer cancel()
//		err := consumer.Drain(dctx) // nil: every delivered message was settled
//	}
//
// The methods are safe for concurrent use, and must not be called from a
// hub callback (they may wait for the broker), except Done and Err.
// Callbacks never run under the consumer's lock.
type Consumer struct {
	conn      *Connection
	opts      ConsumerOptions
	accept    *serializer.AcceptSet
	tagPrefix string

	// opMu serialises the operations and guards their state. It is held
	// across channel calls, which may drive the hub and so run this
	// consumer's deliveries on the same goroutine: receive must therefore
	// never take it.
	opMu    sync.Mutex
	ch      transport.Channel
	revived bool
	queues  []Queue
	tags    map[string]string // queue name -> consumer tag

	// mu guards the callbacks, read by receive on the hub goroutine while
	// user goroutines register more. Never held across a call out.
	mu      sync.Mutex
	cbs     []Callback
	taps    map[uint64]Callback
	nextTap uint64

	// lineMu guards lines and dlqOn. The hub goroutine reads and writes
	// them, but so do the decode pool's goroutines (dlqOn) and, after
	// RegisterWithEventLoop moved the connection, a straggling post to the
	// old hub. Never held across a call out.
	lineMu sync.Mutex
	// lines holds, per queue, the deliveries waiting for a message of
	// theirs that the decode pool is preparing (see receive).
	lines map[string][]*pending
	// dlqOn is the channel the dead-letter queue was declared on.
	dlqOn transport.Channel

	decodeErrors atomic.Uint64

	// life is the consumer's lifecycle (Close, Drain, Done, Err).
	life consumerLife
}

// DecodeErrors returns how many delivered messages this consumer could not
// decode, whatever was done with them (OnDecodeError, DeadLetterQueue or
// the default rejection).
func (c *Consumer) DecodeErrors() uint64 { return c.decodeErrors.Load() }

// NewConsumer returns a consumer on conn. It resolves the accept list
// (errors match [ErrNotInstalled]) but does no I/O.
func NewConsumer(conn *Connection, opts ConsumerOptions) (*Consumer, error) {
	if conn == nil {
		return nil, fmt.Errorf("messaging: NewConsumer: nil connection")
	}
	names := opts.Accept
	if names == nil {
		names = defaultAccept
	}
	accept, err := conn.ser.PrepareAccept(names)
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		conn:      conn,
		opts:      opts,
		accept:    accept,
		tagPrefix: opts.TagPrefix,
		queues:    slices.Clone(opts.Queues),
		tags:      map[string]string{},
		cbs:       slices.Clone(opts.Callbacks),
		ch:        opts.Channel,
	}
	c.life.run = newConsumerRun()
	c.life.settled = c.settled
	for _, q := range c.queues {
		conn.noteQueue(q)
	}
	if c.tagPrefix == "" {
		c.tagPrefix = DefaultTagPrefix
	}
	return c, nil
}

// Accept returns the content types the consumer decodes.
func (c *Consumer) Accept() []string { return c.accept.ContentTypes() }

// Connection returns the consumer's connection.
func (c *Consumer) Connection() *Connection { return c.conn }

// Queues returns the queues the consumer consumes from (or will).
func (c *Consumer) Queues() []Queue {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	return slices.Clone(c.queues)
}

// RegisterCallback adds a callback (Kombu's register_callback).
func (c *Consumer) RegisterCallback(cb Callback) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cbs = append(c.cbs, cb)
}

// tap adds an internal callback and returns its removal.
func (c *Consumer) tap(cb Callback) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taps == nil {
		c.taps = map[uint64]Callback{}
	}
	id := c.nextTap
	c.nextTap++
	c.taps[id] = cb
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.taps, id)
	}
}

func (c *Consumer) newTag() string {
	return c.tagPrefix + strconv.FormatUint(tagCounter.Add(1), 10)
}

// channel returns the consumer's channel, reviving the consumer when the
// default channel changed (after a reconnection). Called with c.opMu held.
func (c *Consumer) channelLocked(ctx context.Context) (transport.Channel, error) {
	if c.opts.Channel != nil {
		return c.ch, nil
	}
	ch, err := c.conn.DefaultChannel(ctx)
	if err != nil {
		return nil, err
	}
	if ch != c.ch {
		c.ch, c.revived = ch, false
		clear(c.tags)
	}
	return ch, nil
}

// Revive makes the consumer use ch from now on (Kombu's revive): the
// active consumer tags are forgotten, and the next Consume declares the
// queues and applies the prefetch count on ch before consuming.
func (c *Consumer) Revive(ch transport.Channel) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.ch, c.revived = ch, false
	c.opts.Channel = ch
	clear(c.tags)
}

// reviveLocked declares the queues and sets the prefetch window once per
// channel. Called with c.opMu held.
func (c *Consumer) reviveLocked(ctx context.Context, ch transport.Channel) error {
	if c.revived {
		return nil
	}
	if !c.opts.NoDeclare {
		for i := range c.queues {
			info, err := c.queues[i].Declare(ctx, ch)
			if err != nil {
				return err
			}
			if c.queues[i].Name == "" {
				c.queues[i].Name = info.Name
			}
		}
	}
	if c.opts.PrefetchCount > 0 {
		if err := ch.Qos(ctx, c.opts.PrefetchCount); err != nil {
			return err
		}
	}
	c.revived = true
	return nil
}

// Declare declares the consumer's queues, with their exchanges and
// bindings (Kombu's declare).
func (c *Consumer) Declare(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	ch, err := c.channelLocked(ctx)
	if err != nil {
		return err
	}
	for i := range c.queues {
		info, err := c.queues[i].Declare(ctx, ch)
		if err != nil {
			return err
		}
		if c.queues[i].Name == "" {
			c.queues[i].Name = info.Name
		}
	}
	return nil
}

// Consume starts consuming from every queue that has no active consumer
// yet (Kombu's consume); it can be called again after AddQueue, and after
// Cancel, a lost connection or a cancel by the broker (see Done). The
// first call on a channel declares the queues (unless NoDeclare) and
// applies PrefetchCount. After a cancel by the broker it starts every
// queue's consumer again, and declares the queues again first (unless
// NoDeclare: consuming from a deleted queue then fails with an error
// matching transport.ErrNotFound).
// Returns [ErrNoCallbacks] without callbacks or OnMessage, and
// [ErrStopped] after Close or Drain.
func (c *Consumer) Consume(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.openErr(); err != nil {
		return err
	}
	c.mu.Lock()
	none := len(c.cbs) == 0 && len(c.taps) == 0 && c.opts.OnMessage == nil
	c.mu.Unlock()
	if none {
		return ErrNoCallbacks
	}
	for _, q := range c.queues {
		if err := q.checkConsume(c.opts.NoAck || q.NoAck, c.opts.PrefetchCount); err != nil {
			return err
		}
	}
	ch, err := c.channelLocked(ctx)
	if err != nil {
		return err
	}
	if c.brokerEnded() {
		// The broker ended a queue consumer, most likely because its
		// queue was deleted: start every one again, queues declared anew.
		if err := c.cancelLocked(ctx); err != nil {
			return err
		}
		c.revived = false
	}
	if err := c.reviveLocked(ctx, ch); err != nil {
		return err
	}
	h := c.conn.hubNow()
	r := c.startRun(h)
	for _, q := range c.queues {
		if _, ok := c.tags[q.Name]; ok {
			continue
		}
		noAck := c.opts.NoAck || q.NoAck
		tag, err := ch.Consume(ctx, transport.ConsumeOptions{
			Queue: q.Name, ConsumerTag: c.newTag(), NoAck: noAck, Arguments: q.consumerArguments(),
			OnCancel: c.onBrokerCancel(r, q.Name),
		}, c.deliverFunc(h, ch, noAck))
		if err != nil {
			return err
		}
		c.tags[q.Name] = tag
	}
	return nil
}

// ConsumerTags returns the active consumer tags by queue name.
func (c *Consumer) ConsumerTags() map[string]string {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	out := make(map[string]string, len(c.tags))
	for k, v := range c.tags {
		out[k] = v
	}
	return out
}

// ConsumingFrom reports whether the consumer has a queue of that name
// (Kombu's consuming_from).
func (c *Consumer) ConsumingFrom(queue string) bool {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	return slices.ContainsFunc(c.queues, func(q Queue) bool { return q.Name == queue })
}

// AddQueue adds a queue, declaring it now unless NoDeclare; Consume starts
// consuming from it (Kombu's add_queue).
func (c *Consumer) AddQueue(ctx context.Context, q Queue) (Queue, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if !c.opts.NoDeclare {
		ch, err := c.channelLocked(ctx)
		if err != nil {
			return q, err
		}
		info, err := q.Declare(ctx, ch)
		if err != nil {
			return q, err
		}
		if q.Name == "" {
			q.Name = info.Name
		}
	}
	c.queues = append(c.queues, q)
	c.conn.noteQueue(q)
	return q, nil
}

// Cancel stops every active consumer (Kombu's cancel). The queues stay, so
// Consume starts them again. Done is closed, with Err [ErrStopped], until
// then. Unlike Close and Drain, Cancel does not refuse deliveries already
// under way: they still reach the callbacks.
func (c *Consumer) Cancel(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.endRun(ErrStopped)
	return c.cancelLocked(ctx)
}

// cancelLocked cancels the broker consumers. Called with c.opMu held.
func (c *Consumer) cancelLocked(ctx context.Context) error {
	var errs []error
	for name, tag := range c.tags {
		if c.ch != nil {
			errs = append(errs, ignoreGone(c.ch.Cancel(ctx, tag)))
		}
		delete(c.tags, name)
	}
	return errors.Join(errs...)
}

// ignoreGone drops the errors of cancelling on a channel that is already
// closed or broken: the consumer is gone either way.
func ignoreGone(err error) error {
	if errors.Is(err, transport.ErrClosed) || transport.IsConnectionError(err) {
		return nil
	}
	return err
}

// CancelByQueue stops consuming from a queue and removes it (Kombu's
// cancel_by_queue).
func (c *Consumer) CancelByQueue(ctx context.Context, queue string) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	var err error
	if tag, ok := c.tags[queue]; ok && c.ch != nil {
		err = ignoreGone(c.ch.Cancel(ctx, tag))
		delete(c.tags, queue)
	}
	c.queues = slices.DeleteFunc(c.queues, func(q Queue) bool { return q.Name == queue })
	return err
}

// Purge removes the ready messages of every queue and returns how many
// (Kombu's purge). Unacknowledged messages stay.
func (c *Consumer) Purge(ctx context.Context) (int, error) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	ch, err := c.channelLocked(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, q := range c.queues {
		n, err := q.Purge(ctx, ch)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Qos sets the prefetch window of the consumer's channel (Kombu's qos).
func (c *Consumer) Qos(ctx context.Context, prefetchCount int) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	ch, err := c.channelLocked(ctx)
	if err != nil {
		return err
	}
	c.opts.PrefetchCount = prefetchCount
	return ch.Qos(ctx, prefetchCount)
}

// Recover asks the broker to redeliver the channel's unacknowledged
// messages (Kombu's recover).
func (c *Consumer) Recover(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	ch, err := c.channelLocked(ctx)
	if err != nil {
		return err
	}
	return ch.Recover(ctx)
}

// Flow pauses (false) or resumes (true) deliveries on the channel (Kombu's
// flow). Transports without basic.flow return transport.ErrUnsupported.
func (c *Consumer) Flow(ctx context.Context, active bool) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	ch, err := c.channelLocked(ctx)
	if err != nil {
		return err
	}
	f, ok := ch.(transport.Flower)
	if !ok {
		return fmt.Errorf("messaging: flow: %w", transport.ErrUnsupported)
	}
	return f.Flow(ctx, active)
}

// deliverFunc is the transport callback of one queue consumer; h is the
// hub its deliveries run on.
func (c *Consumer) deliverFunc(h *hub.Hub, ch transport.Channel, noAck bool) transport.DeliverFunc {
	return func(tm *transport.Message) { c.receive(h, ch, noAck, tm) }
}

// dispatch hands a prepared message to OnMessage or, decoded, to the
// callbacks; an undecodable one goes to decodeFailed. On the hub
// goroutine.
func (c *Consumer) dispatch(m *Message) {
	if !c.enter(m) {
		return
	}
	defer c.leave(m)
	c.conn.delivered()
	if err := m.Err(); err != nil {
		c.decodeFailed(m, err)
		return
	}
	c.mu.Lock()
	onMessage := c.opts.OnMessage
	cbs := slices.Clone(c.cbs)
	for _, t := range c.taps {
		cbs = append(cbs, t)
	}
	c.mu.Unlock()
	if onMessage != nil {
		onMessage(m)
		return
	}
	body, err := m.Decode()
	if err != nil {
		c.decodeFailed(m, err)
		return
	}
	for _, cb := range cbs {
		cb(body, m)
	}
}

// decodeFailed counts an undecodable message and hands it to
// OnDecodeError, or to the dead-letter queue, or rejects it, logs, and
// reports the error to DrainEvents.
func (c *Consumer) decodeFailed(m *Message, err error) {
	c.decodeErrors.Add(1)
	c.conn.decodeErrors.Add(1)
	if h := c.opts.OnDecodeError; h != nil {
		h(m, err)
		return
	}
	if c.opts.DeadLetterQueue != "" && c.conn.pool.submit(func(ctx context.Context) { c.deadLetter(ctx, m, err) }) {
		return
	}
	c.conn.log.Error("messaging: rejecting a message that cannot be decoded",
		"queue", m.DeliveryInfo.Queue, "delivery_tag", m.DeliveryTag(), "content_type", m.ContentType,
		"size", len(m.raw), "err", err)
	if !m.noAck {
		m.RejectLogError(c.conn.log)
	}
	c.conn.report(err)
}
