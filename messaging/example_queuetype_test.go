package messaging_test

import (
	"fmt"
	"maps"
	"slices"

	"github.com/kombu-go/kombu/messaging"
)

// A quorum queue that dead-letters a message after three requeues, and the
// declaration arguments it sends: what Kombu users write as
// queue_arguments.
func ExampleQuorumQueue() {
	tasks := messaging.QuorumQueue("tasks", messaging.NewExchange("tasks", messaging.Direct), "tasks")
	tasks.DeliveryLimit = 3
	tasks.DeadLetterRoutingKey = "tasks.dead" // through the default exchange
	args := tasks.Arguments()
	for _, k := range slices.Sorted(maps.Keys(args)) {
		fmt.Printf("%s=%q\n", k, fmt.Sprint(args[k]))
	}
	fmt.Println("replicated:", tasks.Replicated())
	// Output:
	// x-dead-letter-exchange=""
	// x-dead-letter-routing-key="tasks.dead"
	// x-delivery-limit="3"
	// x-queue-type="quorum"
	// replicated: true
}

// A stream read from its first message: consumers of a stream need a
// prefetch window and acknowledgements.
func ExampleStreamQueue() {
	events := messaging.StreamQueue("events", messaging.Exchange{}, "", messaging.StreamFirst)
	opts := messaging.ConsumerOptions{Queues: []messaging.Queue{events}, PrefetchCount: 100}
	fmt.Println(events.Arguments()["x-queue-type"], opts.Queues[0].StreamOffset)
	// Output: stream first
}
