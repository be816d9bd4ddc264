package transport

import "time"

// Message is a message as it travels between a producer, the broker and a
// consumer. A producer fills Body, ContentType, ContentEncoding, Headers and
// Properties; a channel fills DeliveryInfo on delivery.
//
// Body holds the serialized (and possibly compressed) payload as raw bytes:
// transports that need a text form (Redis' JSON envelope) encode it
// themselves, so Body is never base64 here.
type Message struct {
	Body            []byte
	ContentType     string
	ContentEncoding string
	// Headers are the application headers (Kombu's message.headers, AMQP's
	// headers table). Values are JSON-compatible: string, float64, int64,
	// bool, nil, []any, map[string]any.
	Headers    map[string]any
	Properties Properties
	// DeliveryInfo is set by the channel that delivers the message.
	DeliveryInfo DeliveryInfo
	// Err is non-nil when the transport received bytes it could not decode
	// into a message (a malformed envelope). Body then holds the raw bytes as
	// received and the message can still be acknowledged or rejected, so bad
	// input is never dropped silently.
	Err error
}

// Properties are Kombu's message properties (the AMQP basic properties).
// The zero value of each field means "absent", except DeliveryMode where 0
// means the default, persistent (2).
type Properties struct {
	CorrelationID string
	ReplyTo       string
	MessageID     string
	Type          string
	AppID         string
	UserID        string
	// Timestamp is the AMQP timestamp property (whole seconds on the wire).
	Timestamp time.Time
	// DeliveryMode is 1 (transient) or 2 (persistent); 0 means 2.
	DeliveryMode uint8
	// Expiration is the message TTL in milliseconds as a decimal string, as
	// Kombu writes it ("10000" for 10 s). Empty means none.
	Expiration string
	// Priority is 0..255 on AMQP; virtual transports clamp it to 0..9.
	Priority int
	// Extra keeps properties this struct does not name, so that a message
	// read from the wire and written back loses nothing.
	Extra map[string]any
}

// DeliveryInfo says where a delivered message came from and how to settle it.
type DeliveryInfo struct {
	Exchange    string
	RoutingKey  string
	Redelivered bool
	ConsumerTag string
	// DeliveryTag identifies the delivery for Ack and Reject on the channel
	// that delivered it. Virtual transports use Kombu's UUID string (stable
	// across redeliveries); AMQP uses the channel's counter in decimal.
	DeliveryTag string
	// Queue is the queue the message was taken from, when the transport knows.
	Queue string
}

// Exchange declares an exchange. Type is one of [Direct], [Topic], [Fanout],
// [Headers]; empty means Direct.
type Exchange struct {
	Name       string
	Type       string
	Durable    bool
	AutoDelete bool
	Internal   bool
	// Passive asks only whether the exchange exists: a missing one gives an
	// error that matches [ErrNotFound].
	Passive   bool
	Arguments map[string]any
}

// Exchange types.
const (
	Direct  = "direct"
	Topic   = "topic"
	Fanout  = "fanout"
	Headers = "headers"
)

// Queue declares a queue. Arguments carry the x- options (x-max-priority,
// x-expires and x-message-ttl in milliseconds, x-max-length,
// x-dead-letter-exchange ...).
type Queue struct {
	Name       string
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	// Passive asks only whether the queue exists: a missing one gives an
	// error that matches [ErrNotFound].
	Passive   bool
	Arguments map[string]any
}

// QueueInfo is the broker's answer to a queue declaration.
type QueueInfo struct {
	Name      string
	Messages  int
	Consumers int
}

// Binding routes messages from Exchange to Queue by RoutingKey (the binding
// key); Arguments carry x-match and the header values for headers exchanges.
type Binding struct {
	Queue      string
	Exchange   string
	RoutingKey string
	Arguments  map[string]any
}

// PublishOptions are the basic.publish flags. Transports that cannot honour
// one ignore it, as Kombu does (Redis ignores all of them).
type PublishOptions struct {
	// Mandatory asks the broker to return an unroutable message (see
	// [Returner]).
	Mandatory bool
	Immediate bool
	// Confirm asks Publish to return only once the broker confirmed the
	// message (AMQP publisher confirms), even on a connection without
	// confirm_publish. Transports that have stored the message when
	// Publish returns (memory, Redis) ignore it.
	Confirm bool
}

// ConsumeOptions describe a consumer.
type ConsumeOptions struct {
	Queue string
	// ConsumerTag names the consumer; empty lets the channel choose one.
	ConsumerTag string
	// NoAck means messages count as acknowledged on delivery.
	NoAck     bool
	Exclusive bool
	Arguments map[string]any
	// OnCancel, when set, is called on the hub goroutine when the broker
	// ends the consumer by itself (py-amqp's basic_consume on_cancel):
	// RabbitMQ sends basic.cancel when the queue is deleted, or when a
	// quorum or mirrored queue loses the replica the consumer was on, and
	// a transport that restarts consumers after a reconnection may find
	// the broker refusing one. err matches [ErrConsumerCancelled] and says
	// why when the transport knows. It is
	// the consumer's last callback: no delivery follows it, the channel
	// stays open, and the consumer's unacknowledged messages can still be
	// settled. It is not called after Cancel or Close, nor when the
	// connection is lost. Transports whose brokers never end a consumer
	// (memory, redis: Kombu's virtual transports keep consuming a deleted
	// queue's name) never call it. Optional.
	OnCancel func(consumerTag string, err error)
}

// DeliverFunc receives a delivered message on the hub goroutine. It must not
// block: hand slow work to another goroutine and settle the message from
// there with Ack or Reject, which are safe from any goroutine.
type DeliverFunc func(m *Message)
