package amqp

import (
	"reflect"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/transport"
)

// topology records what this connection declared, in order, so that the
// recovery can declare it again on a new connection. Passive declarations
// are not recorded; deletions forget. It belongs to the executor.
type topology struct {
	exchanges []transport.Exchange
	queues    []recordedQueue
	bindings  []transport.Binding
	// exBindings are exchange-to-exchange bindings: Queue holds the
	// destination exchange.
	exBindings []transport.Binding
	// renames maps the old name of a server-named queue to the name the
	// broker gave it after a reconnection.
	renames map[string]string
}

type recordedQueue struct {
	q           transport.Queue
	name        string // the current name (the broker's, for server-named queues)
	serverNamed bool
}

// resolve follows the renames of server-named queues.
func (t *topology) resolve(name string) string {
	for range 8 { // a queue renamed by several reconnections
		n, ok := t.renames[name]
		if !ok {
			return name
		}
		name = n
	}
	return name
}

func (t *topology) rename(old, cur string) {
	if t.renames == nil {
		t.renames = make(map[string]string)
	}
	t.renames[old] = cur
	for i := range t.queues {
		if t.queues[i].name == old {
			t.queues[i].name = cur
		}
	}
	for i := range t.bindings {
		if t.bindings[i].Queue == old {
			t.bindings[i].Queue = cur
		}
	}
}

func (t *topology) addExchange(ex transport.Exchange) {
	for i := range t.exchanges {
		if t.exchanges[i].Name == ex.Name {
			t.exchanges[i] = ex
			return
		}
	}
	t.exchanges = append(t.exchanges, ex)
}

func (t *topology) deleteExchange(name string) {
	t.exchanges = deleteFunc(t.exchanges, func(e transport.Exchange) bool { return e.Name == name })
	t.bindings = deleteFunc(t.bindings, func(b transport.Binding) bool { return b.Exchange == name })
	t.exBindings = deleteFunc(t.exBindings, func(b transport.Binding) bool {
		return b.Exchange == name || b.Queue == name
	})
}

func (t *topology) addQueue(q transport.Queue, name string) {
	rq := recordedQueue{q: q, name: name, serverNamed: q.Name == ""}
	for i := range t.queues {
		if t.queues[i].name == name {
			t.queues[i] = rq
			return
		}
	}
	t.queues = append(t.queues, rq)
}

func (t *topology) deleteQueue(name string) {
	t.queues = deleteFunc(t.queues, func(q recordedQueue) bool { return q.name == name })
	t.bindings = deleteFunc(t.bindings, func(b transport.Binding) bool { return b.Queue == name })
}

func sameBinding(a, b transport.Binding) bool {
	return a.Queue == b.Queue && a.Exchange == b.Exchange && a.RoutingKey == b.RoutingKey &&
		(len(a.Arguments) == 0 && len(b.Arguments) == 0 || reflect.DeepEqual(a.Arguments, b.Arguments))
}

// addBinding records a queue binding; addExBinding an exchange-to-exchange
// binding (exchange.bind), with the destination exchange in Queue.
func (t *topology) addBinding(b transport.Binding)   { addUnique(&t.bindings, b) }
func (t *topology) addExBinding(b transport.Binding) { addUnique(&t.exBindings, b) }

func (t *topology) deleteBinding(b transport.Binding)   { deleteSame(&t.bindings, b) }
func (t *topology) deleteExBinding(b transport.Binding) { deleteSame(&t.exBindings, b) }

func addUnique(list *[]transport.Binding, b transport.Binding) {
	for _, x := range *list {
		if sameBinding(x, b) {
			return
		}
	}
	*list = append(*list, b)
}

func deleteSame(list *[]transport.Binding, b transport.Binding) {
	*list = deleteFunc(*list, func(x transport.Binding) bool { return sameBinding(x, b) })
}

// consumerGone forgets an auto-delete queue once no channel of this
// connection consumes from it: the broker deletes such a queue with its
// last consumer, and redeclaring it after a reconnection would resurrect
// it with nobody to consume it.
func (t *topology) consumerGone(queue string, chans []*channel) {
	for _, ch := range chans {
		for _, cons := range ch.consumers {
			if cons.queue == queue && !cons.cancelled.Load() {
				return
			}
		}
	}
	for _, q := range t.queues {
		if q.name == queue && q.q.AutoDelete {
			t.deleteQueue(queue)
			return
		}
	}
}

func deleteFunc[T any](s []T, del func(T) bool) []T {
	out := s[:0]
	for _, x := range s {
		if !del(x) {
			out = append(out, x)
		}
	}
	clear(s[len(out):])
	return out
}

// The restore helpers convert arguments that were valid when first
// declared, so conversion cannot fail here.

func declareExchange(ctl *amqp091.Channel, ex transport.Exchange) error {
	args, _ := toTable(ex.Arguments)
	return declareExchangeArgs(ctl, ex, args)
}

func declareQueue(ctl *amqp091.Channel, q transport.Queue) (amqp091.Queue, error) {
	args, _ := toTable(q.Arguments)
	return declareQueueArgs(ctl, q, args)
}

// bindExchange binds exchange b.Queue (the destination) to b.Exchange.
func bindExchange(ctl *amqp091.Channel, b transport.Binding) error {
	args, _ := toTable(b.Arguments)
	return ctl.ExchangeBind(b.Queue, b.RoutingKey, b.Exchange, false, args)
}

func bindQueue(ctl *amqp091.Channel, b transport.Binding) error {
	args, _ := toTable(b.Arguments)
	return ctl.QueueBind(b.Queue, b.RoutingKey, b.Exchange, false, args)
}
