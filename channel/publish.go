package channel

import (
	"context"
	"fmt"

	"github.com/kombu-go/kombu/transport"
)

// Priority limits of the virtual transports (Kombu's min_priority and
// max_priority).
const (
	MinPriority = 0
	MaxPriority = 9
)

// Priority returns a message priority clamped to [MinPriority, MaxPriority]
// (Kombu's _get_message_priority); with reverse it returns MaxPriority
// minus that, for brokers that serve higher numbers first.
func Priority(p int, reverse bool) int {
	p = min(max(p, MinPriority), MaxPriority)
	if reverse {
		return MaxPriority - p
	}
	return p
}

// PriorityStep returns the priority bucket of a message priority (Kombu
// Redis' Channel.priority): the largest step not above the clamped
// priority, where steps are ascending (default [0 3 6 9]). As in Kombu
// (steps[bisect_right(steps, p) - 1]), a priority below every step maps to
// the last step.
func PriorityStep(steps []int, p int) int {
	if len(steps) == 0 {
		return 0
	}
	p = Priority(p, false)
	i := 0
	for i < len(steps) && steps[i] <= p {
		i++
	}
	if i == 0 {
		return steps[len(steps)-1]
	}
	return steps[i-1]
}

// Publish routes m and hands it to the store (Kombu's basic_publish):
//
//   - exchange "": the queue named routingKey (or the dead-letter queue when
//     routingKey is empty);
//   - a fanout exchange (by the local type): [Store.PutFanout];
//   - otherwise (direct, topic, headers; an exchange this process has not
//     declared routes as direct): the store's binding table, then
//     [Store.Put] to each matching queue. With no match, the dead-letter
//     queue if one is configured, else the message is returned
//     (opts.Mandatory and a return handler set, see [Channel.HandleReturns])
//     or dropped, as Kombu drops it.
//
// The channel gives the message a new delivery tag (a uuid4). m itself is
// not modified and may be reused once Publish returns; a message routed to
// several queues gets a fresh delivery tag for each copy after the first,
// so that one channel consuming two of those queues can settle each copy.
// Safe for concurrent use.
func (c *Channel) Publish(ctx context.Context, m *transport.Message, exchange, routingKey string, opts transport.PublishOptions) error {
	if err := c.check(); err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("channel: publish of a nil message")
	}
	msg := new(transport.Message)
	*msg = *m
	msg.DeliveryInfo = transport.DeliveryInfo{
		Exchange:    exchange,
		RoutingKey:  routingKey,
		DeliveryTag: NewDeliveryTag(),
	}
	if exchange == "" {
		q := routingKey
		if q == "" {
			q = c.opts.DeadLetterQueue
		}
		if q == "" {
			c.unroutable(msg, opts)
			return nil
		}
		return c.put(ctx, q, msg)
	}
	typ := c.state.Typeof(exchange)
	if typ == transport.Fanout {
		n, err := c.st.PutFanout(ctx, exchange, routingKey, msg)
		if err != nil {
			return fmt.Errorf("channel: publish to %q: %w", exchange, err)
		}
		if n == 0 {
			c.unroutable(msg, opts)
		}
		return nil
	}
	table, err := c.st.Table(ctx, exchange)
	if err != nil {
		return fmt.Errorf("channel: publish to %q: %w", exchange, err)
	}
	var buf [8]string
	queues := Lookup(typ, table, routingKey, msg.Headers, c.opts.DeadLetterQueue, buf[:0])
	if len(queues) == 0 {
		if c.opts.DeadLetterQueue == "" {
			c.unroutable(msg, opts)
			return nil
		}
		c.log.Warn("channel: message could not be delivered, sent to the dead-letter queue",
			"exchange", exchange, "routing_key", routingKey, "queue", c.opts.DeadLetterQueue)
		if err := c.st.NewQueue(ctx, transport.Queue{Name: c.opts.DeadLetterQueue}); err != nil {
			return fmt.Errorf("channel: dead-letter queue: %w", err)
		}
		queues = append(queues, c.opts.DeadLetterQueue)
	}
	for i, q := range queues {
		mm := msg
		if i < len(queues)-1 {
			// Every queue but the last gets its own copy, so the store may
			// keep and modify each; the last takes msg itself.
			mm = new(transport.Message)
			*mm = *msg
			if i > 0 {
				mm.DeliveryInfo.DeliveryTag = NewDeliveryTag()
			}
		} else if i > 0 {
			msg.DeliveryInfo.DeliveryTag = NewDeliveryTag()
		}
		if err := c.put(ctx, q, mm); err != nil {
			return err
		}
	}
	return nil
}

func (c *Channel) put(ctx context.Context, queue string, m *transport.Message) error {
	if err := c.st.Put(ctx, queue, m); err != nil {
		return fmt.Errorf("channel: publish to queue %q: %w", queue, err)
	}
	return nil
}

// unroutable returns a mandatory message nobody took, when a return
// handler is set; otherwise the message is dropped (Kombu).
func (c *Channel) unroutable(m *transport.Message, opts transport.PublishOptions) {
	if !opts.Mandatory {
		return
	}
	fn := c.onReturn.Load()
	if fn == nil {
		return
	}
	r := &transport.Returned{ReplyCode: 312, ReplyText: "NO_ROUTE",
		Exchange: m.DeliveryInfo.Exchange, RoutingKey: m.DeliveryInfo.RoutingKey, Message: m}
	c.h.Post(func() { (*fn)(r) })
}

// Lookup returns the queues a message published to exchange with
// routingKey and headers is routed to, as Publish would route it, with the
// dead-letter queue when nothing matches (Kombu's _lookup). Redis uses it to
// restore a message through its exchange. Fanout exchanges are looked up in
// the binding table too. Safe for concurrent use.
func (c *Channel) Lookup(ctx context.Context, exchange, routingKey string, headers map[string]any) ([]string, error) {
	var queues []string
	if exchange == "" {
		if routingKey != "" {
			queues = append(queues, routingKey)
		}
	} else {
		table, err := c.st.Table(ctx, exchange)
		if err != nil {
			return nil, fmt.Errorf("channel: lookup %q: %w", exchange, err)
		}
		queues = Lookup(c.state.Typeof(exchange), table, routingKey, headers, c.opts.DeadLetterQueue, nil)
	}
	if len(queues) == 0 && c.opts.DeadLetterQueue != "" {
		queues = append(queues, c.opts.DeadLetterQueue)
	}
	return queues, nil
}

// Get takes one message from queue (basic_get). It returns an error
// matching transport.ErrEmpty when there is none. Unless noAck, the message
// counts as unacknowledged on this channel until Ack or Reject (it is
// recorded by the hub, in order with later acks). Safe for concurrent use.
func (c *Channel) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	m, err := c.st.Get(ctx, queue, noAck)
	if err != nil {
		return nil, fmt.Errorf("channel: get from %q: %w", queue, err)
	}
	if m.DeliveryInfo.DeliveryTag == "" {
		m.DeliveryInfo.DeliveryTag = NewDeliveryTag()
	}
	m.DeliveryInfo.Queue = queue
	m.DeliveryInfo.ConsumerTag = ""
	if noAck {
		return m, nil
	}
	if err := c.enqueue(request{kind: reqGot, tag: m.DeliveryInfo.DeliveryTag, msg: m}); err != nil {
		// Closed between the store's get and here: give the message back
		// rather than lose it.
		m.DeliveryInfo.Redelivered = true
		if perr := c.st.Put(ctx, queue, m); perr != nil {
			c.log.Error("channel: message lost: get raced with close", "queue", queue, "err", perr)
		}
		return nil, err
	}
	return m, nil
}
