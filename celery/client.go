package celery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// DefaultQueue is Celery's task_default_queue: the queue "celery", bound to
// the direct exchange "celery" with routing key "celery".
const DefaultQueue = "celery"

// Route says where a task goes (an entry of Celery's task_routes).
type Route struct {
	// Queue is the queue name; declared durable and bound to an exchange
	// of the same name (Celery's automatic queues) unless Exchange says
	// otherwise.
	Queue string
	// Exchange and ExchangeType name the exchange (default: the queue's
	// name, direct). A direct exchange with no RoutingKey is sent, as
	// Celery does, to the default exchange with the queue's name.
	Exchange, ExchangeType string
	// RoutingKey of the message. Default: the queue's name.
	RoutingKey string
}

// Router chooses a task's route (Celery's task_routes as a function); ok
// false falls through to the default queue.
type Router func(name string, args []any, kwargs map[string]any) (r Route, ok bool)

// RouteMap is a Router from a map of task names to routes (task_routes as
// a dict; the key "*" matches every task).
func RouteMap(m map[string]Route) Router {
	return func(name string, _ []any, _ map[string]any) (Route, bool) {
		if r, ok := m[name]; ok {
			return r, true
		}
		r, ok := m["*"]
		return r, ok
	}
}

// ClientOptions configure a [Client].
type ClientOptions struct {
	// Broker is the broker URL (messaging.NewConnection's forms), used when
	// Connection is nil.
	Broker string
	// Connection, when set, is used instead of Broker; the client does not
	// close it.
	Connection *messaging.Connection
	// Backend is the result backend URL ("redis://...", "rpc://"), used
	// when ResultBackend is nil. Empty: no results (AsyncResult.Get
	// returns ErrNoBackend).
	Backend string
	// ResultBackend, when set, is used instead of Backend; the client does
	// not close it.
	ResultBackend Backend
	// BackendOptions configure a backend opened from Backend.
	BackendOptions BackendOptions
	// DefaultQueue is task_default_queue. Default: "celery".
	DefaultQueue string
	// Routes is task_routes. Default: everything to DefaultQueue.
	Routes Router
	// Serializer is task_serializer ("json", "msgpack", "yaml"). Default:
	// json.
	Serializer string
	// Compression is task_compression ("gzip", "bzip2", "zstd" ...).
	// Default: none.
	Compression string
	// Logger receives diagnostics. Default: slog.Default().
	Logger *slog.Logger
}

// Client sends tasks and reads their results (the sending half of a
// Celery app). Safe for concurrent use.
type Client struct {
	opts     ClientOptions
	conn     *messaging.Connection
	ownConn  bool
	backend  Backend
	ownBack  bool
	producer *messaging.Producer
	origin   string
}

// NewClient returns a client. It connects lazily; it fails only on bad
// options (an unknown URL scheme, serializer or compression).
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.DefaultQueue == "" {
		opts.DefaultQueue = DefaultQueue
	}
	if opts.Serializer == "" {
		opts.Serializer = "json"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{opts: opts, conn: opts.Connection, backend: opts.ResultBackend, origin: origin()}
	if c.conn == nil {
		conn, err := messaging.NewConnection(opts.Broker, messaging.Options{Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		c.conn, c.ownConn = conn, true
	}
	p, err := messaging.NewProducer(c.conn, messaging.ProducerOptions{Serializer: opts.Serializer,
		Compression: opts.Compression})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.producer = p
	if c.backend == nil && opts.Backend != "" {
		var b Backend
		if strings.HasPrefix(opts.Backend, "rpc://") {
			// Replies come over the client's own connection.
			b, err = NewRPCBackend(c.conn, opts.BackendOptions)
		} else {
			b, err = OpenBackend(opts.Backend, opts.Broker, opts.BackendOptions)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		c.backend, c.ownBack = b, true
	}
	return c, nil
}

// Backend returns the client's result backend (nil without one).
func (c *Client) Backend() Backend { return c.backend }

// Close closes the backend and the connection the client opened.
func (c *Client) Close() error {
	var errs []error
	if c.ownBack && c.backend != nil {
		errs = append(errs, c.backend.Close())
	}
	if c.ownConn && c.conn != nil {
		errs = append(errs, c.conn.Close())
	}
	return errors.Join(errs...)
}

// CallOptions are apply_async's options.
type CallOptions struct {
	Args   []any
	Kwargs map[string]any
	// TaskID is the task's id. Default: a new UUID4.
	TaskID string
	// Countdown delays the task by this long (sets ETA).
	Countdown time.Duration
	// ETA is when the task may run (wins over Countdown).
	ETA time.Time
	// Expires revokes the task if a worker receives it after this time;
	// ExpiresIn is the same relative to now. Both also set the message's
	// TTL (expiration), as Celery does.
	Expires   time.Time
	ExpiresIn time.Duration
	// Retries is the retries header (the count of earlier attempts).
	Retries int
	// Priority of the message (AMQP 0..255, Redis 0..9 lower first).
	Priority int
	// Queue, Exchange, ExchangeType and RoutingKey override the route
	// (Celery's queue=, exchange=, routing_key=).
	Queue, Exchange, ExchangeType, RoutingKey string
	// Headers are added to the message headers.
	Headers map[string]any
	// ParentID and RootID link the task to the one that sent it. RootID
	// defaults to the task's id.
	ParentID, RootID string
	// GroupID is the group header.
	GroupID string
	// TimeLimit and SoftTimeLimit go in the timelimit header.
	TimeLimit, SoftTimeLimit time.Duration
	// Serializer and Compression override the client's.
	Serializer, Compression string
	// IgnoreResult asks the worker not to store a result.
	IgnoreResult bool
	// Shadow is another name for logs.
	Shadow string
}

// SendTask sends a task by name with positional and keyword arguments
// (Celery's app.send_task), and returns its result handle.
func (c *Client) SendTask(ctx context.Context, name string, args []any, kwargs map[string]any) (*AsyncResult, error) {
	return c.ApplyAsync(ctx, name, CallOptions{Args: args, Kwargs: kwargs})
}

// ApplyAsync sends a task with options (Celery's apply_async), as a
// protocol 2 message.
func (c *Client) ApplyAsync(ctx context.Context, name string, o CallOptions) (*AsyncResult, error) {
	if name == "" {
		return nil, errors.New("celery: ApplyAsync: no task name")
	}
	id := o.TaskID
	if id == "" {
		id = messaging.NewUUID()
	}
	replyTo := ""
	if s, ok := c.backend.(sender); ok && !o.IgnoreResult {
		var err error
		if replyTo, err = s.onSend(ctx, id); err != nil {
			return nil, err
		}
	}
	msg, err := buildMessage(name, id, c.origin, replyTo, o)
	if err != nil {
		return nil, err
	}
	route := c.route(name, o)
	ex, rk, decl := route.target()
	msg.opts.Exchange, msg.opts.RoutingKey, msg.opts.Declare = &ex, rk, decl
	if err := c.producer.Publish(ctx, msg.body, msg.opts); err != nil {
		return nil, fmt.Errorf("celery: send %s: %w", name, err)
	}
	return &AsyncResult{ID: id, backend: c.backend}, nil
}

// route resolves the route of a task: CallOptions, then Routes, then the
// default queue.
func (c *Client) route(name string, o CallOptions) Route {
	r := Route{Queue: c.opts.DefaultQueue}
	if c.opts.Routes != nil {
		if rr, ok := c.opts.Routes(name, o.Args, o.Kwargs); ok {
			r = rr
		}
	}
	if o.Queue != "" {
		r = Route{Queue: o.Queue}
	}
	if o.Exchange != "" {
		r.Exchange, r.ExchangeType = o.Exchange, o.ExchangeType
	}
	if o.RoutingKey != "" {
		r.RoutingKey = o.RoutingKey
	}
	return r
}

// target returns the exchange and routing key to publish to and what to
// declare first. As Celery (amqp.py send_task_message), a direct exchange
// is replaced by the default exchange with the queue's name.
func (r Route) target() (messaging.Exchange, string, []messaging.Declaration) {
	var decl []messaging.Declaration
	if r.Queue != "" {
		exName := r.Exchange
		if exName == "" {
			exName = r.Queue
		}
		kind := r.ExchangeType
		if kind == "" {
			kind = messaging.Direct
		}
		rk := r.RoutingKey
		if rk == "" {
			rk = r.Queue
		}
		decl = append(decl, messaging.NewQueue(r.Queue, messaging.NewExchange(exName, kind), rk))
		if kind == messaging.Direct && (r.Exchange == "" || r.RoutingKey == "") {
			return messaging.Exchange{}, r.Queue, decl
		}
		return messaging.NewExchange(exName, kind), rk, decl
	}
	kind := r.ExchangeType
	if kind == "" {
		kind = messaging.Direct
	}
	return messaging.NewExchange(r.Exchange, kind), r.RoutingKey, decl
}

// message is a task message ready to publish.
type message struct {
	body any
	opts messaging.PublishOptions
}

// buildMessage makes Celery's protocol 2 message (headers, properties and
// the [args, kwargs, embed] body).
func buildMessage(name, id, orig, replyTo string, o CallOptions) (message, error) {
	now := time.Now()
	args, kwargs := o.Args, o.Kwargs
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	var eta, expires any
	switch {
	case !o.ETA.IsZero():
		eta = formatTime(o.ETA)
	case o.Countdown > 0:
		eta = formatTime(now.Add(o.Countdown))
	}
	exp := o.Expires
	if exp.IsZero() && o.ExpiresIn > 0 {
		exp = now.Add(o.ExpiresIn)
	}
	var ttl time.Duration
	if !exp.IsZero() {
		expires = formatTime(exp)
		if ttl = exp.Sub(now); ttl <= 0 {
			ttl = time.Millisecond // already expired: the worker revokes it
		}
	}
	root := o.RootID
	if root == "" {
		root = id
	}
	argsrepr, kwargsrepr := reprArgs(args, kwargs)
	h := map[string]any{
		"lang": "go", "task": name, "id": id, "shadow": nilIfEmpty(o.Shadow), "eta": eta, "expires": expires,
		"group": nilIfEmpty(o.GroupID), "group_index": nil, "retries": o.Retries,
		"timelimit": []any{secondsValue(o.TimeLimit), secondsValue(o.SoftTimeLimit)},
		"root_id":   root, "parent_id": nilIfEmpty(o.ParentID), "argsrepr": argsrepr, "kwargsrepr": kwargsrepr,
		"origin": orig, "ignore_result": o.IgnoreResult,
	}
	for k, v := range o.Headers {
		h[k] = v
	}
	body := []any{args, kwargs, map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}}
	return message{body: body, opts: messaging.PublishOptions{Headers: h, CorrelationID: id, ReplyTo: replyTo,
		Priority: o.Priority, Expiration: ttl, Serializer: o.Serializer, Compression: o.Compression}}, nil
}

// DeleteQueue deletes a task queue as Celery declares it (durable, bound to
// the direct exchange of its name) and that exchange. It declares them
// first: Kombu's Redis channel deletes only the queues whose bindings it
// knows, so that the binding set goes too.
func DeleteQueue(ctx context.Context, conn *messaging.Connection, name string) error {
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return err
	}
	q := messaging.NewQueue(name, messaging.NewExchange(name, messaging.Direct), name)
	if _, err := q.Declare(ctx, ch); err != nil {
		return err
	}
	if _, err := q.Delete(ctx, ch, messaging.DeleteOptions{}); err != nil {
		return err
	}
	return q.Exchange.Delete(ctx, ch, messaging.DeleteOptions{})
}
