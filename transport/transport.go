package transport

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/kombu-go/kombu/hub"
)

// Transport reaches one kind of broker. It is created from a [Config] by the
// transport package's New function and is safe for concurrent use.
type Transport interface {
	// Dial connects to the broker and attaches the connection to h: all its
	// deliveries and timers run on h's goroutine. It fails when the broker
	// cannot be reached, like Kombu's establish_connection.
	Dial(ctx context.Context, h *hub.Hub) (Conn, error)
	// Info describes the transport and what it can do.
	Info() Info
}

// Conn is one live connection to a broker.
type Conn interface {
	// Channel opens a new channel. Safe for concurrent use.
	Channel(ctx context.Context) (Channel, error)
	// Done is closed when the connection is closed or lost for good (after
	// the transport's own recovery, if any, gave up); Err then says why.
	Done() <-chan struct{}
	// Err returns nil while the connection is usable, ErrClosed after Close,
	// or the error that broke it.
	Err() error
	// Close closes every channel (restoring their unacknowledged messages
	// where the transport can) and the connection. It is idempotent and
	// must not be called from a hub callback.
	Close() error
}

// Channel is Kombu's channel: declarations, publishing and consuming. See
// the package documentation for which methods may run on which goroutine.
type Channel interface {
	Declarer
	// Publish sends m to exchange with routingKey ("" exchange: the queue
	// named routingKey). Safe for concurrent use.
	Publish(ctx context.Context, m *Message, exchange, routingKey string, opts PublishOptions) error
	// Get takes one message from queue (basic.get). It returns ErrEmpty when
	// the queue has none. Unless noAck, the message must be settled with Ack
	// or Reject.
	Get(ctx context.Context, queue string, noAck bool) (*Message, error)
	// Consume starts a consumer and returns its tag. Deliveries arrive on the
	// hub goroutine through fn; opts.OnCancel, when set, hears of the
	// broker ending the consumer by itself.
	Consume(ctx context.Context, opts ConsumeOptions, fn DeliverFunc) (string, error)
	// Cancel stops the consumer with this tag; unknown tags are ignored.
	// From a goroutine other than the hub's, a delivery already under way
	// may still reach the callback after Cancel returned.
	Cancel(ctx context.Context, consumerTag string) error
	// Ack acknowledges a delivery. Asynchronous and safe for concurrent use.
	Ack(deliveryTag string) error
	// Reject rejects a delivery; with requeue it goes back to its queue.
	// Asynchronous and safe for concurrent use.
	Reject(deliveryTag string, requeue bool) error
	// Qos sets the prefetch window: at most prefetchCount unacknowledged
	// deliveries (0: unlimited). Safe for concurrent use; it may wait for
	// the broker (AMQP) or only queue the change for the hub (virtual
	// transports).
	Qos(ctx context.Context, prefetchCount int) error
	// Recover redelivers every unacknowledged message of this channel
	// (basic.recover with requeue).
	Recover(ctx context.Context) error
	// Close cancels the consumers, restores unacknowledged messages where the
	// transport can, and releases the channel. Idempotent.
	Close() error
}

// Declarer holds the declaration half of a Channel. Safe for concurrent use.
type Declarer interface {
	DeclareExchange(ctx context.Context, ex Exchange) error
	DeleteExchange(ctx context.Context, name string, ifUnused bool) error
	DeclareQueue(ctx context.Context, q Queue) (QueueInfo, error)
	BindQueue(ctx context.Context, b Binding) error
	UnbindQueue(ctx context.Context, b Binding) error
	// DeleteQueue deletes a queue and returns how many messages it held.
	DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error)
	// PurgeQueue removes every ready message and returns how many.
	PurgeQueue(ctx context.Context, name string) (int, error)
}

// Returned is a message the broker sent back (mandatory and unroutable).
type Returned struct {
	ReplyCode  int
	ReplyText  string
	Exchange   string
	RoutingKey string
	Message    *Message
}

// Returner is implemented by channels that can return unroutable mandatory
// messages (AMQP, memory). fn runs on the hub goroutine.
type Returner interface {
	OnReturn(fn func(*Returned))
}

// Flower is implemented by channels that support basic.flow.
type Flower interface {
	Flow(ctx context.Context, active bool) error
}

// Info describes a transport.
type Info struct {
	// Driver is the transport's name: "memory", "redis", "amqp".
	Driver string
	// DefaultPort is the port used when a URL gives none (0: not a network
	// transport).
	DefaultPort int
	// ExchangeTypes lists the exchange types the transport routes.
	ExchangeTypes []string
	// Priorities says whether message priority changes delivery order.
	Priorities bool
	// Fanout is "broadcast" when every bound queue gets its own copy stored,
	// "pubsub" when fanout is at-most-once to live subscribers (Redis).
	Fanout string
	// Heartbeats says whether the transport keeps the connection alive with
	// heartbeats.
	Heartbeats bool
	// Confirms says whether Publish waits for the broker's confirmation.
	Confirms bool
}

// Config is what a URL and the connection options resolve to. Each transport
// reads the fields it understands and ignores the rest.
type Config struct {
	// Scheme is the URL scheme as given (redis, rediss, amqp, pyamqp, ...).
	Scheme      string
	Hostname    string
	Port        int
	UserID      string
	Password    string
	VirtualHost string
	// TLS, when non-nil, turns TLS on with this configuration.
	TLS            *tls.Config
	ConnectTimeout time.Duration
	Heartbeat      time.Duration
	// Options are Kombu's transport_options plus the URL's query parameters.
	// Values are strings (from a URL) or typed values (from code).
	Options map[string]any
	// Alternates are the other URLs of a failover list (informational for
	// transports that discover their own hosts, such as sentinel).
	Alternates []string
	// Logger receives the transport's diagnostics; nil discards them.
	Logger *slog.Logger
}

// ExchangeBinder is implemented by channels whose broker binds an exchange
// to another exchange (AMQP's exchange.bind, a RabbitMQ extension; Kombu's
// Exchange.bind_to). Messages that source routes with routingKey (and
// args, for a headers exchange) are routed on by destination.
// UnbindExchange removes such a binding. Kombu's virtual transports
// (memory, Redis) have no exchange-to-exchange bindings and do not
// implement it; callers report transport.ErrUnsupported for them. Safe for
// concurrent use, like the Channel's other declarations.
type ExchangeBinder interface {
	BindExchange(ctx context.Context, destination, source, routingKey string, args map[string]any) error
	UnbindExchange(ctx context.Context, destination, source, routingKey string, args map[string]any) error
}

// PublishRequest is one message of a batch.
type PublishRequest struct {
	Message    *Message
	Exchange   string
	RoutingKey string
	Options    PublishOptions
}

// BatchPublisher is implemented by channels that can publish many messages
// for the cost of about one round trip (Redis pipelines them). Messages are
// published in order (per queue, on a Redis Cluster); on error, part of the
// batch may have been published: a prefix on one node, any of its messages
// on a cluster, whose masters each get a pipeline. PublishBatch keeps neither reqs nor their messages' bodies
// once it returns, except a message published with Options.Mandatory
// (which may come back as a Returned): the caller may reuse the others'
// bytes (messaging.Producer.PublishBatch serializes a batch's bodies into
// one buffer that the next batch reuses). Safe for concurrent use, like
// Publish.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, reqs []PublishRequest) error
}
