package messaging

import "reflect"

// Confirm says when a [Producer] waits for the broker's publisher confirm
// (AMQP); Kombu's nearest setting is the connection-wide transport option
// confirm_publish, which still applies on top of it. Transports that have
// stored a message when Publish returns (memory, Redis) have nothing to
// wait for.
type Confirm uint8

const (
	// ConfirmAuto waits for the confirm of a message that may reach a
	// replicated queue (a quorum queue or a stream, see
	// [Queue.Replicated]) that the producer knows: one in the publish's
	// Declare list, one declared through the connection's MaybeDeclare, or
	// a queue of a Consumer of the same connection. A message reaches such a
	// queue when it is published to the default exchange with the queue's
	// name as routing key, or to an exchange the queue is bound to (with
	// the same routing key for a direct exchange; any key for the other
	// types, which cannot be told apart without the broker). It is the
	// default: a quorum queue's guarantee is only as good as the
	// publisher's knowledge that the message was stored.
	ConfirmAuto Confirm = iota
	// ConfirmAlways waits for the confirm of every message.
	ConfirmAlways
	// ConfirmNever never asks for one (the connection's confirm_publish
	// still waits for every message).
	ConfirmNever
)

// noteQueue records a replicated queue the connection declared, for
// ConfirmAuto.
func (c *Connection) noteQueue(q Queue) {
	if !q.Replicated() || q.Name == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.replicated.Load()
	if cur != nil {
		if old, ok := (*cur)[q.Name]; ok && reflect.DeepEqual(old, q) {
			return // known already: no copy
		}
	}
	next := map[string]Queue{q.Name: q}
	if cur != nil {
		for k, v := range *cur {
			if k != q.Name {
				next[k] = v
			}
		}
	}
	c.replicated.Store(&next)
}

// asQueue returns the Queue a Declaration holds.
func asQueue(d Declaration) (Queue, bool) {
	switch x := d.(type) {
	case Queue:
		return x, true
	case *Queue:
		if x != nil {
			return *x, true
		}
	}
	return Queue{}, false
}

// reachesReplicated reports whether a message published to exchange with
// routingKey may reach a replicated queue among declare or those the
// connection declared.
func (c *Connection) reachesReplicated(declare []Declaration, exchange, routingKey string) bool {
	for _, d := range declare {
		if q, ok := asQueue(d); ok && q.Replicated() && q.reachedBy(exchange, routingKey) {
			return true
		}
	}
	known := c.replicated.Load()
	if known == nil {
		return false
	}
	for _, q := range *known {
		if q.reachedBy(exchange, routingKey) {
			return true
		}
	}
	return false
}

// reachedBy reports whether a message published to exchange with
// routingKey may be routed to q, from q's own bindings.
func (q Queue) reachedBy(exchange, routingKey string) bool {
	if exchange == "" {
		return routingKey == q.Name
	}
	for _, b := range q.bindings() {
		if b.Exchange.Name != exchange {
			continue
		}
		if b.Exchange.Type == Direct || b.Exchange.Type == "" {
			if b.RoutingKey == routingKey {
				return true
			}
			continue
		}
		return true
	}
	return false
}

// confirmFor decides whether a publish waits for its confirm.
func (p *Producer) confirmFor(opts *PublishOptions, declare []Declaration, exchange, routingKey string) bool {
	mode := opts.Confirm
	if mode == ConfirmAuto {
		mode = p.opts.Confirm
	}
	switch mode {
	case ConfirmAlways:
		return true
	case ConfirmNever:
		return false
	}
	return p.conn.reachesReplicated(declare, exchange, routingKey)
}
