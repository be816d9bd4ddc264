package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

var _ transport.Channel = (*Channel)(nil)

// Channel is Kombu's virtual channel over a [Store]: it implements
// transport.Channel for the memory and Redis transports. Create it with
// [New].
//
// Declarations, Publish, Get, Consume, Cancel, Qos, Recover, Ack and Reject
// are safe for concurrent use. Close is too, but from a hub callback it
// returns hub.ErrInCallback. The methods that stores call (Deliver, Room,
// CanConsume, NoAck) must be called by the hub's owner (see [Store]); Wake
// is safe anywhere.
type Channel struct {
	h    *hub.Hub
	st   Store
	pull Puller // nil for a pushing store
	// noAckTaker is the store as a NoAckTaker, nil if it is not one.
	noAckTaker NoAckTaker
	state      *State
	opts       Options
	log        *slog.Logger

	// closed is set when Close starts; calls made after it fail with
	// transport.ErrClosed.
	closed atomic.Bool
	done   chan struct{} // closed when Close has finished
	err    error         // Close's result, read after done

	// mu guards the inbox: Ack, Reject, Consume, Cancel, Qos, Recover and
	// Get come from any goroutine (consumer workers ack from their own), and
	// the hub takes their requests in one batch per turn. A mutex-guarded
	// slice and one pre-allocated flush function, posted at most once until
	// it runs, cost no allocation per ack; a closure posted per ack would.
	mu          sync.Mutex
	inbox       []request
	sealed      bool                 // set by Close: the inbox takes no more requests
	tags        map[string]*consumer // consumer tags in use (guarded by mu)
	nextID      uint64               // for generated consumer tags (guarded by mu)
	flush       func()               // posted to run c.runInbox
	flushPosted bool                 // flush is posted and has not started (guarded by mu)

	wake atomic.Bool // a pull was requested with Wake and not yet run
	pump func()      // posted by Wake to run c.pullAll

	onReturn atomic.Pointer[func(*transport.Returned)]

	// Hub-owned state.
	spare    []request
	consumed map[string]*queueConsumers
	active   []string // consumed queues, in first-consume order
	cycle    FairCycle
	qos      qos
	batch    []Settlement
	one      [1]Settlement
	pullBuf  []*transport.Message
	pulling  bool // inside pullAll (a delivery callback must not re-enter it)
	released bool // the store is closed
	// resumeDue: requests applied off the hub (TryOwn) opened the window
	// or changed the consumers; the next flush on the hub pulls or resumes.
	resumeDue bool
}

// New returns a channel over st, attached to h. If st implements [Puller],
// the channel pulls messages from it; otherwise st pushes them with
// [Channel.Deliver].
func New(h *hub.Hub, st Store, opts Options) *Channel {
	if h == nil || st == nil {
		panic("channel: New with a nil hub or store") // programmer error
	}
	opts.setDefaults()
	c := &Channel{
		h:        h,
		st:       st,
		state:    opts.State,
		opts:     opts,
		log:      opts.Logger,
		done:     make(chan struct{}),
		tags:     make(map[string]*consumer),
		consumed: make(map[string]*queueConsumers),
	}
	c.pull, _ = st.(Puller)
	c.noAckTaker, _ = st.(NoAckTaker)
	c.qos.init()
	c.flush = c.runInbox
	c.pump = c.pullPosted
	return c
}

// Hub returns the hub the channel delivers on.
func (c *Channel) Hub() *hub.Hub { return c.h }

// State returns the exchange and binding state the channel routes with.
func (c *Channel) State() *State { return c.state }

// Store returns the channel's store.
func (c *Channel) Store() Store { return c.st }

// HandleReturns sets the function that receives mandatory messages no
// queue accepted (basic.return, reply code 312 NO_ROUTE); nil removes it.
// fn runs on the hub goroutine. Transports that support returns (memory)
// expose this as transport.Returner's OnReturn; Redis ignores mandatory, as
// Kombu does.
func (c *Channel) HandleReturns(fn func(*transport.Returned)) {
	if fn == nil {
		c.onReturn.Store(nil)
		return
	}
	c.onReturn.Store(&fn)
}

func (c *Channel) check() error {
	if c.closed.Load() {
		return fmt.Errorf("channel: %w", transport.ErrClosed)
	}
	return nil
}

// DeclareExchange declares an exchange in the process-local [State] (Kombu
// stores nothing about exchanges in the broker). An empty type means
// direct; the name "" (the default exchange) always exists. A passive
// declaration of an unknown exchange fails with an error matching
// transport.ErrNotFound, a redeclaration with another type, durable,
// auto_delete, internal or arguments with one matching
// transport.ErrNotEquivalent. Types other than direct, topic, fanout and
// headers give transport.ErrUnsupported.
func (c *Channel) DeclareExchange(ctx context.Context, ex transport.Exchange) error {
	if err := c.check(); err != nil {
		return err
	}
	if ex.Type == "" {
		ex.Type = transport.Direct
	}
	if !knownType(ex.Type) {
		return fmt.Errorf("channel: exchange type %q: %w", ex.Type, transport.ErrUnsupported)
	}
	if ex.Name == "" {
		return nil
	}
	if ex.Passive {
		if _, ok := c.state.Exchange(ex.Name); !ok {
			return transport.NotFound("exchange", ex.Name, c.opts.VHost)
		}
		return nil
	}
	prev, existed := c.state.declareExchange(ex)
	if existed {
		if d := equivalentExchange(prev, ex); d != "" {
			return transport.NotEquivalent("exchange", ex.Name, d)
		}
	}
	return nil
}

// DeleteExchange deletes an exchange from the local state. As Kombu does,
// it first deletes every queue bound to it that is empty (queue_delete with
// if_unused and if_empty); a queue that is not empty is left alone. With
// ifUnused, an exchange that has bindings is not deleted and the error
// matches transport.ErrPreconditionFailed. Deleting an unknown exchange
// does nothing.
func (c *Channel) DeleteExchange(ctx context.Context, name string, ifUnused bool) error {
	if err := c.check(); err != nil {
		return err
	}
	if _, ok := c.state.Exchange(name); !ok || name == "" {
		return nil
	}
	table, err := c.st.Table(ctx, name)
	if err != nil {
		return fmt.Errorf("channel: delete exchange %q: %w", name, err)
	}
	if ifUnused && len(table) > 0 {
		return &transport.BrokerError{Kind: transport.KindChannel, Code: 406,
			Reason: fmt.Sprintf("PRECONDITION_FAILED - exchange '%s' in vhost '%s' in use", name, c.opts.VHost)}
	}
	var done []string
	for _, r := range table {
		if r.Queue == "" || contains(done, r.Queue) {
			continue
		}
		done = append(done, r.Queue)
		if _, err := c.DeleteQueue(ctx, r.Queue, true, true); err != nil &&
			!errors.Is(err, transport.ErrPreconditionFailed) {
			return err
		}
	}
	c.state.deleteExchange(name)
	return nil
}

// DeclareQueue declares a queue (the store creates it) and returns its
// size. An empty name gets a generated one, "amq.gen-<uuid>". A passive
// declaration of a queue the store does not have fails with an error
// matching transport.ErrNotFound (on Redis an empty queue does not exist).
// Consumers is always 0, as in Kombu.
func (c *Channel) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	if err := c.check(); err != nil {
		return transport.QueueInfo{}, err
	}
	if q.Passive {
		ok, err := c.st.HasQueue(ctx, q.Name)
		if err != nil {
			return transport.QueueInfo{}, fmt.Errorf("channel: declare queue %q: %w", q.Name, err)
		}
		if !ok {
			return transport.QueueInfo{}, transport.NotFound("queue", q.Name, c.opts.VHost)
		}
	} else {
		if q.Name == "" {
			q.Name = "amq.gen-" + NewDeliveryTag()
		}
		if err := c.st.NewQueue(ctx, q); err != nil {
			return transport.QueueInfo{}, fmt.Errorf("channel: declare queue %q: %w", q.Name, err)
		}
	}
	n, err := c.st.Size(ctx, q.Name)
	if err != nil {
		return transport.QueueInfo{}, fmt.Errorf("channel: declare queue %q: %w", q.Name, err)
	}
	return transport.QueueInfo{Name: q.Name, Messages: n}, nil
}

// BindQueue binds a queue to a declared exchange. The exchange must have
// been declared in this process (Kombu raises KeyError; here the error
// matches transport.ErrNotFound), and the default exchange cannot be bound
// (403). A binding that exists already is not written again.
func (c *Channel) BindQueue(ctx context.Context, b transport.Binding) error {
	if err := c.check(); err != nil {
		return err
	}
	bd, err := c.binding(b)
	if err != nil {
		return err
	}
	ok, added := c.state.addBinding(bd)
	if !ok {
		return transport.NotFound("exchange", b.Exchange, c.opts.VHost)
	}
	if !added {
		return nil
	}
	if err := c.st.Bind(ctx, bd); err != nil {
		return fmt.Errorf("channel: bind %q to %q: %w", b.Queue, b.Exchange, err)
	}
	return nil
}

// binding resolves a transport binding to a table row of its exchange.
func (c *Channel) binding(b transport.Binding) (Binding, error) {
	if b.Exchange == "" {
		return Binding{}, &transport.BrokerError{Kind: transport.KindChannel, Code: 403,
			Reason: fmt.Sprintf("ACCESS_REFUSED - operation not permitted on the default exchange (queue '%s')", b.Queue)}
	}
	typ := c.state.Typeof(b.Exchange)
	pattern, err := RowPattern(typ, b.RoutingKey, b.Arguments)
	if err != nil {
		return Binding{}, err
	}
	return Binding{Exchange: b.Exchange, Type: typ,
		Row: Row{RoutingKey: b.RoutingKey, Pattern: pattern, Queue: b.Queue}}, nil
}

// UnbindQueue removes a binding from the local state. As in Kombu it does
// not reach the store: on Redis the binding member stays in the set.
// Removing a binding that does not exist does nothing.
func (c *Channel) UnbindQueue(ctx context.Context, b transport.Binding) error {
	if err := c.check(); err != nil {
		return err
	}
	bd, err := c.binding(b)
	if err != nil {
		return err
	}
	c.state.removeBinding(bd.Exchange, bd.Row)
	return nil
}

// DeleteQueue deletes a queue and its bindings and returns how many ready
// messages it held. With ifEmpty, a queue that holds messages is kept and
// the error matches transport.ErrPreconditionFailed (Kombu silently does
// nothing; AMQP fails). ifUnused is passed to the store (memory honours it,
// Redis ignores it as Kombu does).
func (c *Channel) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	if ifEmpty {
		n, err := c.st.Size(ctx, name)
		if err != nil {
			return 0, fmt.Errorf("channel: delete queue %q: %w", name, err)
		}
		if n > 0 {
			return 0, &transport.BrokerError{Kind: transport.KindChannel, Code: 406,
				Reason: fmt.Sprintf("PRECONDITION_FAILED - queue '%s' in vhost '%s' not empty", name, c.opts.VHost)}
		}
	}
	n, err := c.st.DeleteQueue(ctx, name, c.state.QueueBindings(name), ifUnused)
	if err != nil {
		return 0, fmt.Errorf("channel: delete queue %q: %w", name, err)
	}
	c.state.deleteQueueBindings(name)
	return n, nil
}

// PurgeQueue removes the ready messages of a queue and returns how many.
func (c *Channel) PurgeQueue(ctx context.Context, name string) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	n, err := c.st.Purge(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("channel: purge queue %q: %w", name, err)
	}
	return n, nil
}
