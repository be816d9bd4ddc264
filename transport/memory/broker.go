package memory

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// broker is one in-process broker: the state Kombu's memory transport
// keeps in class attributes (global_state and Channel.queues), shared by
// every connection of the process that names the same broker.
type broker struct {
	state *channel.State

	// mu guards queues and subs. The hub cannot own them: publishers call
	// Put from any goroutine, and the consumers of one queue may sit on
	// channels of several hubs. Every critical section is short (a ring
	// buffer push or a batch pop) and never calls out, except to
	// channel.Wake, which is an atomic flag plus, at most, one hub.Post.
	mu     sync.Mutex
	queues map[string]*queue
	// subs maps a queue name to the channels consuming it, whether or not
	// the queue exists yet (Kombu lets a consumer start before the queue).
	subs map[string][]*store
}

func newBroker() *broker {
	return &broker{
		state:  channel.NewState(),
		queues: make(map[string]*queue),
		subs:   make(map[string][]*store),
	}
}

// brokers holds the process-wide brokers by name. Kombu's memory transport
// is process-global by design; a name ("memory://name") selects a separate
// namespace.
var (
	brokersMu sync.Mutex // guards brokers: New runs on any goroutine
	brokers   = map[string]*broker{}
)

func namedBroker(name string) *broker {
	brokersMu.Lock()
	defer brokersMu.Unlock()
	b := brokers[name]
	if b == nil {
		b = newBroker()
		brokers[name] = b
	}
	return b
}

// queue returns the named queue, creating it when create is set; mu held.
func (b *broker) queue(name string, create bool) *queue {
	q := b.queues[name]
	if q == nil && create {
		q = &queue{}
		b.queues[name] = q
	}
	return q
}

// wakeLocked tells the channels consuming queue that it has messages; mu
// held.
func (b *broker) wakeLocked(name string) {
	for _, s := range b.subs[name] {
		s.ch.Wake()
	}
}

// store is the channel.Store of one memory channel.
type store struct {
	b   *broker
	ch  *channel.Channel
	log *slog.Logger
	// consuming is the list given to the last Consuming call (hub-owned).
	consuming []string
}

var (
	_ channel.Store  = (*store)(nil)
	_ channel.Puller = (*store)(nil)
)

func (s *store) NewQueue(ctx context.Context, q transport.Queue) error {
	s.b.mu.Lock()
	s.b.queue(q.Name, true)
	s.b.mu.Unlock()
	return nil
}

func (s *store) HasQueue(ctx context.Context, name string) (bool, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.b.queues[name] != nil, nil
}

func (s *store) Size(ctx context.Context, name string) (int, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if q := s.b.queues[name]; q != nil {
		return q.len(), nil
	}
	return 0, nil
}

func (s *store) Purge(ctx context.Context, name string) (int, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	q := s.b.queues[name]
	if q == nil {
		return 0, nil
	}
	n := q.len()
	q.clear()
	return n, nil
}

func (s *store) DeleteQueue(ctx context.Context, name string, _ []channel.Binding, ifUnused bool) (int, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	q := s.b.queues[name]
	if q == nil {
		return 0, nil
	}
	if ifUnused && len(s.b.subs[name]) > 0 {
		return 0, &transport.BrokerError{Kind: transport.KindChannel, Code: 406,
			Reason: fmt.Sprintf("PRECONDITION_FAILED - queue '%s' in use", name)}
	}
	n := q.len()
	q.clear()
	delete(s.b.queues, name)
	return n, nil
}

func (s *store) Table(ctx context.Context, exchange string) ([]channel.Row, error) {
	return s.b.state.Table(exchange), nil
}

func (s *store) Bind(ctx context.Context, b channel.Binding) error { return nil }

func (s *store) Put(ctx context.Context, name string, m *transport.Message) error {
	own(m)
	s.b.mu.Lock()
	s.b.queue(name, true).pushBack(m)
	s.b.wakeLocked(name)
	s.b.mu.Unlock()
	return nil
}

// PutFanout stores a copy in every queue bound to the exchange: the memory
// transport's fanout is store-and-forward, as in Kombu.
func (s *store) PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error) {
	table := s.b.state.Table(exchange)
	var buf [8]string
	queues := channel.Lookup(transport.Fanout, table, routingKey, nil, "", buf[:0])
	if len(queues) == 0 {
		return 0, nil
	}
	msgs := make([]*transport.Message, len(queues))
	for i := range queues {
		mm := m
		if i > 0 {
			mm = new(transport.Message)
			*mm = *m
			mm.DeliveryInfo.DeliveryTag = channel.NewDeliveryTag()
		}
		msgs[i] = mm
	}
	for _, mm := range msgs {
		own(mm)
	}
	s.b.mu.Lock()
	for i, name := range queues {
		s.b.queue(name, true).pushBack(msgs[i])
		s.b.wakeLocked(name)
	}
	s.b.mu.Unlock()
	return len(queues), nil
}

func (s *store) Get(ctx context.Context, name string, noAck bool) (*transport.Message, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	q := s.b.queues[name]
	if q == nil || q.len() == 0 {
		return nil, fmt.Errorf("memory: queue %q: %w", name, transport.ErrEmpty)
	}
	return q.popFront(), nil
}

// Pull implements channel.Puller: one lock for the whole batch.
func (s *store) Pull(name string, dst []*transport.Message) int {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	q := s.b.queues[name]
	if q == nil {
		return 0
	}
	return q.popInto(dst)
}

// Consuming moves this channel's subscriptions to the given queues.
func (s *store) Consuming(queues []string) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	for _, name := range s.consuming {
		s.unsubLocked(name)
	}
	s.consuming = append(s.consuming[:0], queues...)
	for _, name := range s.consuming {
		s.b.subs[name] = append(s.b.subs[name], s)
	}
}

func (s *store) unsubLocked(name string) {
	list := s.b.subs[name]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.b.subs, name)
	} else {
		s.b.subs[name] = list
	}
}

// Resume does nothing: the channel pulls by itself when its window opens.
func (s *store) Resume() {}

// Settle puts requeued and restored messages back in the queue they were
// delivered from, marked redelivered: a requeue at the back, a restore at
// the front (consumed next). Kombu's memory transport re-routes a restored
// message through its exchange instead, which puts a second copy in every
// other queue the exchange routes to; the queue of origin is what AMQP
// does. A message whose queue was deleted meanwhile is dropped. Acks need
// nothing: a delivered message is already out of its queue.
func (s *store) Settle(batch []channel.Settlement) error {
	locked := false
	for i := range batch {
		st := &batch[i]
		if st.Message == nil || (st.Op != channel.OpRequeue && st.Op != channel.OpRestore) {
			continue
		}
		if !locked {
			s.b.mu.Lock()
			locked = true
		}
		name := st.Message.DeliveryInfo.Queue
		q := s.b.queues[name]
		if q == nil {
			s.log.Warn("memory: message dropped: its queue was deleted", "queue", name,
				"delivery_tag", st.Tag)
			continue
		}
		// A copy: the consumer may still hold the delivered message.
		m := new(transport.Message)
		*m = *st.Message
		m.DeliveryInfo.Redelivered = true
		m.DeliveryInfo.ConsumerTag = ""
		m.DeliveryInfo.DeliveryTag = st.Tag
		if st.Op == channel.OpRequeue {
			q.pushBack(m)
		} else {
			q.pushFront(m)
		}
		s.b.wakeLocked(name)
	}
	if locked {
		s.b.mu.Unlock()
	}
	return nil
}

func (s *store) Close() error {
	s.Consuming(nil)
	return nil
}

// own copies what a stored message shares with its publisher (the body,
// the headers, the extra properties), so that neither a publisher reusing
// its message nor a consumer modifying a delivery can change another copy.
func own(m *transport.Message) {
	if m.Body != nil {
		// In pieces of 1 MiB, yielding between them: one copy of a large
		// body is a memmove the scheduler cannot preempt, slow into fresh
		// memory, and a garbage collection waiting for this goroutine
		// would hold up the consumers' hub meanwhile.
		body := make([]byte, len(m.Body))
		for i := 0; i < len(body); i += 1 << 20 {
			if i > 0 {
				runtime.Gosched()
			}
			copy(body[i:], m.Body[i:min(len(body), i+1<<20)])
		}
		m.Body = body
	}
	if m.Headers != nil {
		m.Headers = cloneMap(m.Headers)
	}
	if m.Properties.Extra != nil {
		m.Properties.Extra = cloneMap(m.Properties.Extra)
	}
}

func cloneMap(src map[string]any) map[string]any {
	dst := make(map[string]any, len(src))
	for k, v := range src {
		dst[k] = cloneValue(v)
	}
	return dst
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []byte:
		return append([]byte(nil), x...)
	}
	return v
}
