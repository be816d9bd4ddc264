package messaging

import (
	"fmt"
	"sort"
	"strings"
)

// QueueFromDict builds a Queue from Kombu's dictionary form
// (Queue.from_dict), the shape queue declarations take in configuration
// files, as in Celery's task_queues:
//
//	exchange, exchange_type              the exchange (default: "", direct)
//	routing_key, binding_key             the binding key (binding_key wins)
//	durable, auto_delete                 both entities, unless overridden by
//	exchange_durable, queue_durable,     the prefixed forms (default: durable,
//	exchange_auto_delete, queue_auto_delete  not auto-deleted)
//	exchange_arguments, queue_arguments,
//	binding_arguments, consumer_arguments   argument tables
//	bindings                             a list of {exchange, exchange_type,
//	                                     routing_key, arguments} (or Binding
//	                                     values): the queue is bound to each,
//	                                     and not through exchange
//	no_ack, exclusive                    as the Queue fields
//	delivery_mode                        1, 2, "transient" or "persistent"
//
// A nil value counts as absent, as Python's None does in Kombu. Unlike
// Kombu, which ignores keys it does not know, an unknown key or a value of
// the wrong type is an error naming it, so that a typo in a configuration
// file does not declare a different queue.
func QueueFromDict(name string, opts map[string]any) (Queue, error) {
	d := dict{m: opts}
	for k := range opts {
		if !fromDictKeys[k] {
			d.fail("unknown key %q", k)
		}
	}
	binding := d.str("binding_key")
	if binding == "" {
		binding = d.str("routing_key")
	}
	ex := NewExchange(d.str("exchange"), d.str("exchange_type"))
	ex.Durable = d.boolOr("exchange_durable", d.boolOr("durable", true))
	ex.AutoDelete = d.boolOr("exchange_auto_delete", d.boolOr("auto_delete", false))
	ex.Arguments = d.table("exchange_arguments")
	ex.DeliveryMode = d.deliveryMode("delivery_mode")
	q := NewQueue(name, ex, binding)
	q.Durable = d.boolOr("queue_durable", d.boolOr("durable", true))
	q.AutoDelete = d.boolOr("queue_auto_delete", d.boolOr("auto_delete", false))
	q.Exclusive = d.boolOr("exclusive", false)
	q.NoAck = d.boolOr("no_ack", false)
	q.QueueArguments = d.table("queue_arguments")
	q.BindingArguments = d.table("binding_arguments")
	q.ConsumerArguments = d.table("consumer_arguments")
	q.Bindings = d.bindings("bindings")
	if len(q.Bindings) > 0 {
		q.Exchange = Exchange{} // Kombu: a queue with bindings has no exchange of its own
	}
	if len(d.errs) > 0 {
		sort.Strings(d.errs)
		return Queue{}, fmt.Errorf("messaging: queue %q from dict: %s", name, strings.Join(d.errs, "; "))
	}
	return q, nil
}

var fromDictKeys = map[string]bool{
	"exchange": true, "exchange_type": true, "routing_key": true, "binding_key": true,
	"durable": true, "exchange_durable": true, "queue_durable": true,
	"auto_delete": true, "exchange_auto_delete": true, "queue_auto_delete": true,
	"exchange_arguments": true, "queue_arguments": true, "binding_arguments": true, "consumer_arguments": true,
	"bindings": true, "no_ack": true, "exclusive": true, "delivery_mode": true,
}

// dict reads typed values out of a map, collecting the errors.
type dict struct {
	m    map[string]any
	errs []string
	path string // prefix of the keys in errors ("bindings[1].")
}

func (d *dict) fail(format string, args ...any) {
	d.errs = append(d.errs, d.path+fmt.Sprintf(format, args...))
}

func (d *dict) get(k string) (any, bool) {
	v, ok := d.m[k]
	return v, ok && v != nil
}

func (d *dict) str(k string) string {
	v, ok := d.get(k)
	if !ok {
		return ""
	}
	s, isStr := v.(string)
	if !isStr {
		d.fail("%s: want a string, got %T", k, v)
	}
	return s
}

func (d *dict) boolOr(k string, def bool) bool {
	v, ok := d.get(k)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		d.fail("%s: want true or false, got %T", k, v)
		return def
	}
	return b
}

func (d *dict) table(k string) map[string]any {
	v, ok := d.get(k)
	if !ok {
		return nil
	}
	t, isMap := v.(map[string]any)
	if !isMap {
		d.fail("%s: want a table, got %T", k, v)
	}
	return t
}

func (d *dict) deliveryMode(k string) DeliveryMode {
	v, ok := d.get(k)
	if !ok {
		return 0
	}
	switch x := v.(type) {
	case string:
		switch x {
		case "transient":
			return Transient
		case "persistent":
			return Persistent
		}
	case DeliveryMode:
		if x == Transient || x == Persistent {
			return x
		}
	case int: // Go and YAML
		if x == 1 || x == 2 {
			return DeliveryMode(x)
		}
	case float64: // JSON
		if x == 1 || x == 2 {
			return DeliveryMode(x)
		}
	}
	d.fail("%s: want 1, 2, \"transient\" or \"persistent\", got %v", k, v)
	return 0
}

// bindings reads a list of Binding values or of tables with exchange,
// exchange_type, routing_key and arguments.
func (d *dict) bindings(k string) []Binding {
	v, ok := d.get(k)
	if !ok {
		return nil
	}
	if bs, isBindings := v.([]Binding); isBindings {
		return bs
	}
	list, isList := v.([]any)
	if !isList {
		d.fail("%s: want a list of bindings, got %T", k, v)
		return nil
	}
	out := make([]Binding, 0, len(list))
	for i, e := range list {
		switch b := e.(type) {
		case Binding:
			out = append(out, b)
		case map[string]any:
			sub := dict{m: b, path: fmt.Sprintf("%s%s[%d].", d.path, k, i)}
			for bk := range b {
				if bk != "exchange" && bk != "exchange_type" && bk != "routing_key" && bk != "arguments" {
					sub.fail("unknown key %q", bk)
				}
			}
			out = append(out, Binding{
				Exchange:   NewExchange(sub.str("exchange"), sub.str("exchange_type")),
				RoutingKey: sub.str("routing_key"),
				Arguments:  sub.table("arguments"),
			})
			d.errs = append(d.errs, sub.errs...)
		default:
			d.fail("%s[%d]: want a binding table, got %T", k, i, e)
		}
	}
	return out
}
