package messaging

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
)

// DrainConsumer starts c consuming and yields the messages it receives,
// until limit messages were yielded (limit <= 0: no limit), ctx ends, or
// the loop breaks (Kombu's drain_consumer). A deadline on ctx ends the
// iteration quietly, as Kombu's ignore_timeouts; any other error is yielded
// once, then the iteration ends. c's own callbacks still run. Consuming is
// cancelled when the iteration ends, and messages that were delivered but
// not yielded (a transport may deliver several at once) are requeued; give
// c a PrefetchCount to limit them.
//
// Messages are yielded undecoded; m.Decode() gives the body. It drives the
// connection's hub (see Connection.DrainEvents).
func DrainConsumer(ctx context.Context, c *Consumer, limit int) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		var mu sync.Mutex // the tap runs on the hub goroutine
		var buf []*Message
		remove := c.tap(func(_ any, m *Message) {
			mu.Lock()
			buf = append(buf, m)
			mu.Unlock()
		})
		if err := c.Consume(ctx); err != nil {
			remove()
			yield(nil, err)
			return
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = c.Cancel(cctx)
			remove()
			// Messages delivered but not yielded go back to the queue
			// rather than stay unacknowledged until the channel closes.
			mu.Lock()
			left := buf
			buf = nil
			mu.Unlock()
			for _, m := range left {
				if !m.noAck && !m.Acknowledged() {
					_ = m.Requeue()
				}
			}
		}()
		pop := func() *Message {
			mu.Lock()
			defer mu.Unlock()
			if len(buf) == 0 {
				return nil
			}
			m := buf[0]
			buf = buf[1:]
			return m
		}
		for n := 0; limit <= 0 || n < limit; {
			if m := pop(); m != nil {
				n++
				if !yield(m, nil) {
					return
				}
				continue
			}
			if err := c.conn.DrainEvents(ctx); err != nil {
				if errors.Is(err, ErrTimeout) {
					return
				}
				yield(nil, err)
				return
			}
		}
	}
}

// IterMessages consumes from q on conn and yields its messages, as
// DrainConsumer does (Kombu's itermessages). opts configure the consumer;
// its Queues are replaced by q.
func IterMessages(ctx context.Context, conn *Connection, q Queue, limit int, opts ConsumerOptions) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		opts.Queues = []Queue{q}
		c, err := NewConsumer(conn, opts)
		if err != nil {
			yield(nil, err)
			return
		}
		for m, err := range DrainConsumer(ctx, c, limit) {
			if !yield(m, err) {
				return
			}
		}
	}
}

// SendReply publishes body as the reply to req (Kombu's send_reply): to
// exchange, with the routing key taken from req's reply_to property, its
// correlation_id, and the serializer that req was encoded with (when the
// registry knows its content type). opts may add or override anything
// else.
func SendReply(ctx context.Context, p *Producer, exchange Exchange, req *Message, body any, opts PublishOptions) error {
	if req.Properties.ReplyTo == "" {
		return errors.New("messaging: SendReply: the request has no reply_to")
	}
	opts.Exchange = &exchange
	opts.RoutingKey = req.Properties.ReplyTo
	if opts.CorrelationID == "" {
		opts.CorrelationID = req.Properties.CorrelationID
	}
	if opts.Serializer == "" && opts.ContentType == "" {
		opts.Serializer = serializerFor(p.conn, req.ContentType)
	}
	return p.Publish(ctx, body, opts)
}

// serializerFor returns the name of the serializer of contentType, or "".
func serializerFor(conn *Connection, contentType string) string {
	for _, name := range conn.ser.Names() {
		if s, ok := conn.ser.Lookup(name); ok && s.ContentType == contentType && s.Encode != nil {
			return name
		}
	}
	return ""
}

// CollectOptions configure CollectReplies.
type CollectOptions struct {
	// Limit is the number of replies to collect (<= 0: until ctx ends).
	Limit int
	// CorrelationID, when set, yields only the replies with this
	// correlation_id; the others are skipped (and acknowledged when Ack is
	// set).
	CorrelationID string
	// Ack consumes with acknowledgements and acknowledges each reply
	// (Kombu's no_ack=False). Default: no-ack consumption.
	Ack bool
	// Consumer configures the consumer (its Queues and NoAck are set by
	// CollectReplies).
	Consumer ConsumerOptions
}

// CollectReplies consumes the reply queue q and yields the decoded reply
// bodies (Kombu's collect_replies) until opts.Limit replies arrived or ctx
// ends (a deadline ends the iteration quietly). A reply that cannot be
// decoded is yielded as an error, and the iteration goes on. Unlike Kombu
// on virtual transports, the reply queue is not deleted afterwards: declare
// it auto-delete, or delete it.
func CollectReplies(ctx context.Context, conn *Connection, q Queue, opts CollectOptions) iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		co := opts.Consumer
		co.NoAck = !opts.Ack
		got := 0
		for m, err := range IterMessages(ctx, conn, q, 0, co) {
			if err != nil {
				if !yield(nil, err) {
					return
				}
				continue
			}
			if opts.Ack {
				m.AckLogError(conn.log)
			}
			if opts.CorrelationID != "" && m.Properties.CorrelationID != opts.CorrelationID {
				continue
			}
			body, err := m.Decode()
			got++
			if !yield(body, err) {
				return
			}
			if opts.Limit > 0 && got >= opts.Limit {
				return
			}
		}
	}
}

// BroadcastOptions configure Broadcast.
type BroadcastOptions struct {
	// Queue names the queue. Default: "bcast.<uuid4>".
	Queue string
	// Unique appends ".<uuid4>" to Queue (or to "bcast").
	Unique bool
	// Durable queue. Default: false.
	Durable bool
	// KeepQueue turns off auto-delete (Kombu's auto_delete=False).
	KeepQueue bool
	// Exchange overrides the fanout exchange named after the broadcast.
	Exchange *Exchange
	// Alias of the queue. Default: name.
	Alias string
}

// Broadcast returns a queue that receives every message published to the
// fanout exchange name, one queue per consumer (Kombu's Broadcast).
func Broadcast(name string, opts BroadcastOptions) Queue {
	qname := opts.Queue
	switch {
	case opts.Unique:
		if qname == "" {
			qname = "bcast"
		}
		qname += "." + NewUUID()
	case qname == "":
		qname = "bcast." + NewUUID()
	}
	ex := NewExchange(name, Fanout)
	if opts.Exchange != nil {
		ex = *opts.Exchange
	}
	alias := opts.Alias
	if alias == "" {
		alias = name
	}
	return Queue{Name: qname, Exchange: ex, Durable: opts.Durable, AutoDelete: !opts.KeepQueue, Alias: alias}
}

// NewUUID returns a random (version 4) UUID in its canonical form, as
// Kombu's uuid(); use it for correlation ids and reply queue names.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
