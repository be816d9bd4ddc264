// Package bench holds the benchmark harness of kombu-go: the poller
// microbenchmarks (a token ring dispatched by the hub, by a raw epoll loop
// and by one goroutine per descriptor), the wake-up round trip of each hub
// wait mode against its floors, and the timer heap against time.AfterFunc.
// cmd/kombu poller-bench prints them; the testing.B benchmarks in this
// package run the same code.
//
// Every figure is a ratio against a baseline measured in the same run:
// absolute numbers on a shared machine drift, ratios much less.
//
// # Concurrency
//
// Each measurement owns the goroutines it starts and joins them before it
// returns. Measurements must not run concurrently with each other.
//
// # Errors
//
// Set-up failures (descriptor limits, poller creation) are returned as
// errors; nothing here panics on I/O.
package bench
