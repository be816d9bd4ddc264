package channel

import (
	"reflect"
	"sync"

	"github.com/kombu-go/kombu/transport"
)

// State is Kombu's BrokerState: the exchanges declared in this process and
// their bindings. Exchange types are process-local in Kombu's virtual
// transports (nothing about an exchange is stored in Redis), so routing a
// publish reads the type from here.
//
// The memory transport shares one State between all its channels (Kombu's
// global_state); the Redis transport keeps one per transport. A State is
// safe for concurrent use.
type State struct {
	// mu serialises declarations, bindings and deletions. Publishers on any
	// goroutine read the exchanges without it (sync.Map of immutable
	// definitions, replaced whole under mu), so a publish never waits for a
	// declaration. The hub cannot own this state: declarations and Publish
	// are synchronous calls from any goroutine, on channels of several hubs.
	mu        sync.Mutex
	exchanges sync.Map // name -> *exchangeDef, immutable once stored
	// queueIndex maps a queue to the bindings that route to it (guarded by
	// mu), for DeleteQueue and queue_bindings.
	queueIndex map[string][]Binding
}

// exchangeDef is one declared exchange. It is never modified after it is
// stored: a new binding stores a new definition with a new table.
type exchangeDef struct {
	ex    transport.Exchange
	table []Row
}

// NewState returns an empty State.
func NewState() *State {
	return &State{queueIndex: make(map[string][]Binding)}
}

func (s *State) lookup(name string) *exchangeDef {
	v, ok := s.exchanges.Load(name)
	if !ok {
		return nil
	}
	return v.(*exchangeDef)
}

// Typeof returns the type of a declared exchange, or transport.Direct for
// an exchange this process has not declared (Kombu's typeof default).
func (s *State) Typeof(exchange string) string {
	if d := s.lookup(exchange); d != nil {
		return d.ex.Type
	}
	return transport.Direct
}

// Exchange returns the declaration of an exchange and whether it exists.
func (s *State) Exchange(name string) (transport.Exchange, bool) {
	if d := s.lookup(name); d != nil {
		return d.ex, true
	}
	return transport.Exchange{}, false
}

// Table returns the binding table of an exchange (nil if unknown). The
// slice is shared and must not be modified.
func (s *State) Table(exchange string) []Row {
	if d := s.lookup(exchange); d != nil {
		return d.table
	}
	return nil
}

// QueueBindings returns the bindings that route to queue (Kombu's
// queue_bindings), in the order they were made.
func (s *State) QueueBindings(queue string) []Binding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Binding(nil), s.queueIndex[queue]...)
}

// declareExchange stores ex unless an exchange of that name exists, and
// returns the definition in force and whether it existed before.
func (s *State) declareExchange(ex transport.Exchange) (transport.Exchange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.lookup(ex.Name); d != nil {
		return d.ex, true
	}
	ex.Passive = false
	s.exchanges.Store(ex.Name, &exchangeDef{ex: ex})
	return ex, false
}

// deleteExchange drops an exchange and its bindings.
func (s *State) deleteExchange(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.lookup(name)
	if d == nil {
		return
	}
	s.exchanges.Delete(name)
	for _, r := range d.table {
		s.unindex(Binding{Exchange: name, Type: d.ex.Type, Row: r})
	}
}

// addBinding adds b to its exchange's table. It reports false when the
// exchange is not declared (ok=false) or the binding exists (added=false).
func (s *State) addBinding(b Binding) (ok, added bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.lookup(b.Exchange)
	if d == nil {
		return false, false
	}
	for _, r := range d.table {
		if r == b.Row {
			return true, false
		}
	}
	table := make([]Row, len(d.table), len(d.table)+1)
	copy(table, d.table)
	s.exchanges.Store(b.Exchange, &exchangeDef{ex: d.ex, table: append(table, b.Row)})
	s.queueIndex[b.Queue] = append(s.queueIndex[b.Queue], b)
	return true, true
}

// removeBinding removes one row from an exchange's table and reports
// whether it was there.
func (s *State) removeBinding(exchange string, row Row) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.lookup(exchange)
	if d == nil {
		return false
	}
	for i, r := range d.table {
		if r == row {
			table := make([]Row, 0, len(d.table)-1)
			table = append(append(table, d.table[:i]...), d.table[i+1:]...)
			s.exchanges.Store(exchange, &exchangeDef{ex: d.ex, table: table})
			s.unindex(Binding{Exchange: exchange, Type: d.ex.Type, Row: row})
			return true
		}
	}
	return false
}

// deleteQueueBindings removes every binding that routes to queue (Kombu's
// queue_bindings_delete).
func (s *State) deleteQueueBindings(queue string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.queueIndex[queue] {
		d := s.lookup(b.Exchange)
		if d == nil {
			continue
		}
		table := make([]Row, 0, len(d.table))
		for _, r := range d.table {
			if r != b.Row {
				table = append(table, r)
			}
		}
		s.exchanges.Store(b.Exchange, &exchangeDef{ex: d.ex, table: table})
	}
	delete(s.queueIndex, queue)
}

// unindex removes b from the queue index; mu is held.
func (s *State) unindex(b Binding) {
	bs := s.queueIndex[b.Queue]
	for i, x := range bs {
		if x.Exchange == b.Exchange && x.Row == b.Row {
			bs = append(bs[:i:i], bs[i+1:]...)
			break
		}
	}
	if len(bs) == 0 {
		delete(s.queueIndex, b.Queue)
	} else {
		s.queueIndex[b.Queue] = bs
	}
}

// equivalentExchange reports which setting of ex differs from prev, or ""
// when the two declarations are equivalent (Kombu's equivalent: type,
// durable, auto_delete and arguments; nil and empty arguments are equal).
func equivalentExchange(prev, ex transport.Exchange) string {
	switch {
	case prev.Type != ex.Type:
		return "'type'"
	case prev.Durable != ex.Durable:
		return "'durable'"
	case prev.AutoDelete != ex.AutoDelete:
		return "'auto_delete'"
	case prev.Internal != ex.Internal:
		return "'internal'"
	}
	if len(prev.Arguments) == 0 && len(ex.Arguments) == 0 {
		return ""
	}
	if len(prev.Arguments) != len(ex.Arguments) {
		return "'arguments'"
	}
	for k, v := range prev.Arguments {
		w, ok := ex.Arguments[k]
		if !ok || !(valueEqual(v, w) || reflect.DeepEqual(v, w)) {
			return "'" + k + "'"
		}
	}
	return ""
}
