// Package memory is the in-process transport: a broker that lives in the
// process's memory, the embedded default of kombu-go (Kombu's memory://).
// It needs no server, so examples, tests and single-process applications
// use it.
//
// # Design
//
// [New] (or [NewWithOptions]) returns a [Transport] over a process-wide broker, as Kombu's memory
// transport shares its state across all connections of a process; the URL
// host names a separate broker ("memory://name"; "" and "localhost" are the
// default one). Exchanges and bindings are Kombu's virtual ones (package
// channel: direct, topic with Kombu's wildcard semantics, fanout, headers).
// Queues are ring buffers of *transport.Message: nothing is serialized, and
// a stored message owns copies of its body and headers, so neither the
// publisher reusing its message nor a consumer modifying its delivery can
// change another copy. Fanout is store-and-forward: every bound queue gets
// its own copy, as in Kombu.
//
// Consumers are woken, not polled: a publish to a queue flags each channel
// consuming it and posts one pull to that channel's hub (many publishes
// before the hub runs cost one post); the channel then takes a batch of
// messages, up to its prefetch window, under one lock acquisition.
//
// Differences from Kombu's memory transport, on purpose:
//   - Closing a channel restores its unacknowledged messages (Kombu's
//     memory transport loses them, do_restore=False); the transport option
//     restore_on_close=false brings Kombu's behaviour back.
//   - A restored message goes back to the front of the queue it came from
//     (delivered next); a message rejected with requeue goes to the back.
//     Kombu re-routes both through the exchange, which copies a fanout or
//     multi-bound message into every other queue again. Either way the
//     message arrives with DeliveryInfo.Redelivered set.
//   - Unroutable mandatory messages are returned ([Channel.OnReturn]).
//
// Priorities are ignored (queues are FIFO), as in Kombu, so
// transport.Info.Priorities is false.
//
// # Options
//
// [Options] holds the settings, typed; [ParseConfig] reads Kombu's option
// map into it: deadletter_queue and restore_on_close. An unknown key is an
// error naming it and listing the valid ones (Kombu ignores it), and
// polling_interval and body_encoding, which mean nothing here, are refused
// with the reason.
//
// # Concurrency
//
// Transport, Conn and Channel follow the transport package's rules: Publish,
// Get, declarations, Ack and Reject are safe from any goroutine;
// deliveries run on the connection's hub, and only on whoever drives it
// (an Ack made while nobody does is applied by the acking goroutine, which
// runs no callback); Close must not be called from a hub callback, where
// it returns an error matching hub.ErrInCallback. One mutex per broker guards the queues, because publishers
// on any goroutine and consumers on several hubs share them; it is held only
// for ring-buffer pushes and batch pops.
//
// # Errors
//
// The in-process broker cannot fail: errors are those of package channel
// (transport.ErrNotFound, ErrNotEquivalent, ErrPreconditionFailed, ErrEmpty,
// ErrClosed), plus a 406 precondition failure from DeleteQueue with ifUnused
// on a queue that has consumers.
package memory
