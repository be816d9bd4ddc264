package channel

import (
	"fmt"
	"slices"
)

// Queue order strategies (Kombu's queue_order_strategy transport option).
const (
	// RoundRobin consumes the queues in the current order and moves the
	// queue that delivered last to the end, so that a busy queue cannot
	// starve the others (the default).
	RoundRobin = "round_robin"
	// PriorityOrder always consumes the queues in the order they were first
	// consumed: the first queue starves the others while it has messages.
	PriorityOrder = "priority"
	// Sorted consumes the queues in alphabetical order.
	Sorted = "sorted"
)

// Cycle orders the queues a channel consumes from (Kombu's cycle
// strategies, used by the Redis transport to build BRPOP's key list). Not
// safe for concurrent use: owned by the hub goroutine.
type Cycle interface {
	// Update replaces the queues (called when consumers change).
	Update(queues []string)
	// Consume returns up to n queues in the order to try them. The slice is
	// valid until the next call on the Cycle.
	Consume(n int) []string
	// Rotate tells the cycle that queue delivered last.
	Rotate(queue string)
}

// NewCycle returns the cycle for a strategy: [RoundRobin] (also for ""),
// [PriorityOrder] or [Sorted].
func NewCycle(strategy string) (Cycle, error) {
	switch strategy {
	case "", RoundRobin:
		return &roundRobin{}, nil
	case PriorityOrder:
		return &priorityCycle{}, nil
	case Sorted:
		return &sortedCycle{}, nil
	}
	return nil, fmt.Errorf("channel: unknown queue_order_strategy %q", strategy)
}

type roundRobin struct{ items []string }

func (c *roundRobin) Update(queues []string) { c.items = append(c.items[:0], queues...) }

func (c *roundRobin) Consume(n int) []string { return c.items[:min(n, len(c.items))] }

func (c *roundRobin) Rotate(queue string) {
	i := slices.Index(c.items, queue)
	if i < 0 {
		return
	}
	copy(c.items[i:], c.items[i+1:])
	c.items[len(c.items)-1] = queue
}

type priorityCycle struct{ items []string }

func (c *priorityCycle) Update(queues []string) { c.items = append(c.items[:0], queues...) }

func (c *priorityCycle) Consume(n int) []string { return c.items[:min(n, len(c.items))] }

func (c *priorityCycle) Rotate(string) {}

type sortedCycle struct{ items, out []string }

func (c *sortedCycle) Update(queues []string) { c.items = append(c.items[:0], queues...) }

func (c *sortedCycle) Consume(n int) []string {
	c.out = append(c.out[:0], c.items[:min(n, len(c.items))]...)
	slices.Sort(c.out)
	return c.out
}

func (c *sortedCycle) Rotate(string) {}

// FairCycle visits resources in turn, starting after the one that served
// last, and tries each at most once per call (Kombu's FairCycle). The
// virtual channel uses it over its consumed queues when it pulls. Not safe
// for concurrent use.
type FairCycle struct {
	items []string
	pos   int
}

// Update replaces the resources and restarts at the first.
func (f *FairCycle) Update(items []string) {
	f.items = append(f.items[:0], items...)
	f.pos = 0
}

// Len returns the number of resources.
func (f *FairCycle) Len() int { return len(f.items) }

// Next calls try on the resources in turn, from the current position, until
// one returns true; it returns that resource and true. The position moves
// past every resource tried. When all fail, or there are none, it returns
// "", false (Kombu re-raises the predicate there).
func (f *FairCycle) Next(try func(string) bool) (string, bool) {
	for range f.items {
		if f.pos >= len(f.items) {
			f.pos = 0
		}
		r := f.items[f.pos]
		f.pos++
		if try(r) {
			return r, true
		}
	}
	return "", false
}
