package messaging

import (
	"fmt"
	"math/rand/v2"
)

// FailoverStrategy chooses the order in which a connection tries its
// alternate URLs (Kombu's failover_strategy). Given the number of URLs, it
// returns an iterator: each call to next returns the index of the URL to
// try. A Connection calls next once right away, to skip the URL it starts
// with (as Kombu's next(cycle) does), then once per switch.
type FailoverStrategy func(n int) (next func() int)

// RoundRobin cycles through the URLs in order: 0, 1, ..., n-1, 0, 1, ...
// (Kombu's "round-robin", itertools.cycle). It is the default.
func RoundRobin(n int) func() int {
	i := -1
	return func() int {
		i = (i + 1) % n
		return i
	}
}

// Shuffle shuffles the URLs before every pick and returns the first, like
// Kombu's "shuffle" (shufflecycle).
func Shuffle(n int) func() int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return func() int {
		rand.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		return order[0]
	}
}

// failoverByName maps Kombu's strategy names to strategies.
func failoverByName(name string) (FailoverStrategy, error) {
	switch name {
	case "", "round-robin":
		return RoundRobin, nil
	case "shuffle":
		return Shuffle, nil
	}
	return nil, fmt.Errorf("messaging: unknown failover strategy %q (choose from round-robin, shuffle)", name)
}
