package messaging

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// SimpleQueueOptions configure a [SimpleQueue] (Kombu's SimpleQueue
// arguments).
type SimpleQueueOptions struct {
	// Queue, when set, is used as it is: Put publishes to its exchange with
	// its routing key. Default: a durable direct exchange and a durable
	// queue both named after the SimpleQueue, bound with that name.
	Queue *Queue
	// QueueArguments are added to the generated queue's arguments.
	QueueArguments map[string]any
	// NoAck: messages from Get need no acknowledgement. Default: false.
	NoAck bool
	// Serializer and Compression are the producer's defaults.
	Serializer  string
	Compression string
	// Accept is the consumer's accept list (see ConsumerOptions.Accept).
	Accept []string
}

// SimpleQueue is Kombu's simple interface: a queue used like a Go
// channel, with Put and a blocking Get. Get returns messages unacknowledged
// (unless NoAck): call Ack on them.
//
// The methods are safe for concurrent use, but Get drives the connection's
// hub, which one goroutine at a time may do.
type SimpleQueue struct {
	conn     *Connection
	queue    Queue
	noAck    bool
	accept   []string
	producer *Producer
	consumer *Consumer

	// mu guards the buffer, filled on the hub goroutine.
	mu        sync.Mutex
	buf       []*Message
	consuming bool
	closed    bool
}

// NewSimpleQueue declares the queue (and its exchange and binding) on
// conn's default channel and returns a SimpleQueue for it.
func NewSimpleQueue(ctx context.Context, conn *Connection, name string, opts SimpleQueueOptions) (*SimpleQueue, error) {
	q := NewQueue(name, NewExchange(name, Direct), name)
	if opts.Queue != nil {
		q = *opts.Queue
	}
	if opts.QueueArguments != nil {
		args := maps.Clone(q.QueueArguments)
		if args == nil {
			args = map[string]any{}
		}
		maps.Copy(args, opts.QueueArguments)
		q.QueueArguments = args
	}
	return newSimple(ctx, conn, q, opts)
}

// NewSimpleBuffer is NewSimpleQueue with buffering semantics (Kombu's
// SimpleBuffer): a transient, auto-deleted exchange and an exclusive,
// auto-deleted, non-durable queue; messages are transient and need no
// acknowledgement.
func NewSimpleBuffer(ctx context.Context, conn *Connection, name string, opts SimpleQueueOptions) (*SimpleQueue, error) {
	ex := Exchange{Name: name, Type: Direct, AutoDelete: true, DeliveryMode: Transient}
	q := Queue{Name: name, Exchange: ex, RoutingKey: name, Exclusive: true, AutoDelete: true,
		QueueArguments: opts.QueueArguments}
	if opts.Queue != nil {
		q = *opts.Queue
	}
	opts.NoAck = true
	return newSimple(ctx, conn, q, opts)
}

func newSimple(ctx context.Context, conn *Connection, q Queue, opts SimpleQueueOptions) (*SimpleQueue, error) {
	p, err := NewProducer(conn, ProducerOptions{Exchange: q.Exchange, RoutingKey: q.RoutingKey,
		Serializer: opts.Serializer, Compression: opts.Compression})
	if err != nil {
		return nil, err
	}
	sq := &SimpleQueue{conn: conn, noAck: opts.NoAck, producer: p, accept: opts.Accept}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return nil, err
	}
	info, err := q.Declare(ctx, ch)
	if err != nil {
		return nil, err
	}
	if q.Name == "" {
		q.Name = info.Name
	}
	sq.queue = q
	c, err := NewConsumer(conn, ConsumerOptions{Queues: []Queue{q}, NoAck: opts.NoAck, NoDeclare: true,
		Accept: opts.Accept, Callbacks: []Callback{sq.receive}})
	if err != nil {
		return nil, err
	}
	sq.consumer = c
	return sq, nil
}

// receive buffers a delivered message. Runs on the hub goroutine.
func (sq *SimpleQueue) receive(_ any, m *Message) {
	sq.mu.Lock()
	if !sq.closed {
		sq.buf = append(sq.buf, m)
		sq.mu.Unlock()
		return
	}
	sq.mu.Unlock()
	// A delivery that raced with Close goes back, as the buffer does.
	if !m.noAck {
		_ = m.Requeue()
	}
}

// Queue returns the queue.
func (sq *SimpleQueue) Queue() Queue { return sq.queue }

// Put publishes body to the queue (Kombu's put). opts may override the
// serializer, compression, headers and so on.
func (sq *SimpleQueue) Put(ctx context.Context, body any, opts PublishOptions) error {
	if sq.isClosed() {
		return ErrClosed
	}
	return sq.producer.Publish(ctx, body, opts)
}

func (sq *SimpleQueue) isClosed() bool {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	return sq.closed
}

func (sq *SimpleQueue) pop() *Message {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	if len(sq.buf) == 0 {
		return nil
	}
	m := sq.buf[0]
	sq.buf[0] = nil
	sq.buf = sq.buf[1:]
	return m
}

// Get returns the next message, waiting until one arrives or ctx ends
// (Kombu's get(block=True, timeout)). The first call starts consuming.
// When ctx's deadline passes the error matches both [ErrEmpty] and
// [ErrTimeout]; a cancelled ctx gives ctx.Err(). Other errors come from
// DrainEvents (a broken connection, an undecodable message, the queue's
// consumer cancelled by the broker: [ErrCancelledByBroker]); after one
// that stopped the consumer, the next Get consumes again (declaring the
// queue again after a cancel by the broker).
func (sq *SimpleQueue) Get(ctx context.Context) (*Message, error) {
	sq.mu.Lock()
	closed, consuming := sq.closed, sq.consuming
	sq.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if stopped := sq.consumer.Err(); !consuming || stopped != nil {
		if errors.Is(stopped, ErrCancelledByBroker) {
			// Most likely its queue was deleted: declare it again (the
			// consumer does not: NoDeclare).
			ch, err := sq.conn.DefaultChannel(ctx)
			if err != nil {
				return nil, err
			}
			if _, err := sq.queue.Declare(ctx, ch); err != nil {
				return nil, err
			}
		}
		if err := sq.consumer.Consume(ctx); err != nil {
			return nil, err
		}
		sq.mu.Lock()
		sq.consuming = true
		sq.mu.Unlock()
	}
	for {
		if m := sq.pop(); m != nil {
			return m, nil
		}
		if err := sq.conn.DrainEvents(ctx); err != nil {
			if errors.Is(err, ErrTimeout) {
				return nil, fmt.Errorf("%w: %w", ErrEmpty, err)
			}
			return nil, err
		}
	}
}

// GetNowait takes a message from the queue without waiting (basic.get) and
// returns [ErrEmpty] when there is none. Messages already buffered by Get
// come first.
func (sq *SimpleQueue) GetNowait(ctx context.Context) (*Message, error) {
	if sq.isClosed() {
		return nil, ErrClosed
	}
	if m := sq.pop(); m != nil {
		return m, nil
	}
	ch, err := sq.conn.DefaultChannel(ctx)
	if err != nil {
		return nil, err
	}
	return sq.queue.Get(ctx, ch, GetOptions{NoAck: sq.noAck, Accept: sq.accept,
		Serializers: sq.conn.ser, Compression: sq.conn.comp, MaxDecompressedSize: sq.conn.maxDecompressed})
}

// Clear purges the queue and returns how many messages it removed
// (Kombu's clear). Messages already delivered to this SimpleQueue (and
// waiting in its buffer) are not counted.
func (sq *SimpleQueue) Clear(ctx context.Context) (int, error) {
	return sq.consumer.Purge(ctx)
}

// Qsize returns the number of ready messages in the queue (Kombu's qsize,
// a passive declaration). A queue the broker does not know counts as
// empty: Redis has no empty queues, where Kombu raises.
func (sq *SimpleQueue) Qsize(ctx context.Context) (int, error) {
	ch, err := sq.conn.DefaultChannel(ctx)
	if err != nil {
		return 0, err
	}
	info, err := sq.queue.DeclareQueue(ctx, ch, true)
	if errors.Is(err, transport.ErrNotFound) {
		return 0, nil
	}
	return info.Messages, err
}

// Close stops consuming (Kombu's close): its consumer is closed (see
// Consumer.Close), and messages it buffered but Get never returned go back
// to the queue. Messages Get returned stay the caller's to settle. Put,
// Get and GetNowait then return [ErrClosed]. Idempotent.
func (sq *SimpleQueue) Close() error {
	sq.mu.Lock()
	if sq.closed {
		sq.mu.Unlock()
		return nil
	}
	sq.closed = true
	buffered := sq.buf
	sq.buf = nil
	sq.mu.Unlock()
	err := sq.consumer.Close()
	// Messages buffered but never handed out go back to the queue now, not
	// when the connection's channel eventually closes. Settled outside the
	// lock: settling may run hub work, and receive takes the lock.
	for _, m := range buffered {
		if m.noAck {
			continue // nothing to give back
		}
		if rerr := m.Requeue(); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// GetOptions configure Queue.Get.
type GetOptions struct {
	// NoAck takes the message without needing an acknowledgement.
	NoAck bool
	// Accept lists the content types Decode accepts (see
	// ConsumerOptions.Accept). Default: json, text and raw.
	Accept []string
	// Serializers and Compression are the registries. Default: the
	// packages' defaults.
	Serializers *serializer.Registry
	Compression *compression.Registry
	// MaxDecompressedSize bounds the decompressed body (see
	// Options.MaxDecompressedSize). Default: the Compression registry's
	// limit.
	MaxDecompressedSize int64
}

// Get takes one message from the queue without consuming (Kombu's
// Queue.get, basic.get). It returns [ErrEmpty] when the queue has none.
func (q Queue) Get(ctx context.Context, ch transport.Channel, opts GetOptions) (*Message, error) {
	ser, comp := opts.Serializers, opts.Compression
	if ser == nil {
		ser = serializer.Default()
	}
	if comp == nil {
		comp = compression.Default()
	}
	names := opts.Accept
	if names == nil {
		names = defaultAccept
	}
	accept, err := ser.PrepareAccept(names)
	if err != nil {
		return nil, err
	}
	tm, err := ch.Get(ctx, q.Name, opts.NoAck || q.NoAck)
	if errors.Is(err, transport.ErrEmpty) {
		return nil, fmt.Errorf("%w: %w", ErrEmpty, err)
	}
	if err != nil {
		return nil, err
	}
	m := newMessage(tm, ch, ser, accept, opts.NoAck || q.NoAck)
	m.decompress(comp, opts.MaxDecompressedSize)
	return m, nil
}
