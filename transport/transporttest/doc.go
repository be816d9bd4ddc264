// Package transporttest is the conformance suite every transport passes:
// call [Run] from the transport's tests with the [Features] that describe
// it and a function that opens a connection.
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Features{Topic: true, ...},
//			func(t *testing.T, h *hub.Hub) transport.Conn { ... })
//	}
//
// The suite covers publishing and consuming through every exchange type the
// transport routes (direct, topic with Kombu's or AMQP's wildcards, fanout
// stored or published, headers), the default exchange, Get and ErrEmpty,
// purge, passive declarations and ErrNotFound, exchange equivalence, ack,
// reject with and without requeue, the prefetch window, cancel, the restore
// of unacknowledged messages on close, priority order, the round trip of
// properties, headers and binary bodies, many messages delivered exactly
// once, and mandatory returns. [Features] switch the cases on and off and
// are, read together, the transport matrix.
//
// # Concurrency
//
// Each test creates its own hub and runs it on a goroutine the suite owns;
// the test's cleanup closes the connection, stops the hub and joins that
// goroutine, so transports' own goleak checks hold. Tests use names with a
// random prefix and delete the queues and exchanges they declared, so runs
// against a shared broker do not collide.
//
// # Errors
//
// Failures are reported through testing.T. Waits for a delivery fail after
// Features.Timeout; they are deadlines, never measurements.
package transporttest
