// Package hub is the event loop at the centre of kombu-go: Kombu's Hub in
// Go. One goroutine owns a Hub and, through it, a [poller.Poller] (epoll or
// kqueue) and a [timer.Heap]. Readers and writers registered on file
// descriptors, timers, and callbacks scheduled with CallSoon or Post all run
// on that goroutine, so the state they touch needs no locks.
//
// # The loop
//
// Each turn of the loop runs, in order:
//
//  1. the ready callbacks: those scheduled with CallSoon during the previous
//     turn and those posted from other goroutines with Post (a callback
//     scheduled during this step runs in the next turn);
//  2. the tick hooks registered with OnTick;
//  3. the due timers, at most Options.MaxTimersPerTurn of them;
//  4. the poll, which blocks no longer than the next timer allows, and not
//     at all when callbacks are already waiting for the next turn;
//  5. the dispatch of every ready descriptor to its reader or writer.
//
// Run drives turns until its context ends or Stop is called; RunOnce drives
// one. There is no hidden goroutine: the caller of Run or RunOnce is the hub
// goroutine for as long as the call lasts, and only one goroutine may drive
// a Hub at a time (the others get [ErrRunning]).
//
// # Concurrency
//
// Post, Call, Stop, Close and Wake are safe for concurrent use. Every other
// method must be called on the hub goroutine: from a callback, or by the
// goroutine that owns the hub while it is not running. Callbacks must not
// block; hand blocking work to another goroutine and come back with Post.
//
// Post is the only door from other goroutines. It appends to a queue under a
// mutex (the one lock in this package: posting goroutines and the hub both
// touch the queue, so the hub cannot own it alone) and wakes the poller
// through its wake-up descriptor only while the hub is, or is about to be,
// blocked in a poll, so many posts cost at most one wake-up and posts made
// by the hub itself cost none.
//
// # Waiting
//
// How the hub blocks decides its latency. A goroutine blocked in a plain
// epoll_wait system call keeps its thread; a goroutine it just readied (by
// a channel send, say) waits for the scheduler to notice, tens of
// microseconds. [Options.Wait] selects the strategy; the default was chosen by
// measurement (see the README and cmd/kombu poller-bench).
//
// # Errors
//
// A callback that panics does not kill the loop silently: the panic is
// recovered as a [*PanicError] carrying the value and the stack, and handed
// to Options.OnError. If OnError is nil or returns a non-nil error, Run and
// RunOnce stop and return that error (as Kombu's run_once lets an exception
// escape); if OnError returns nil, the loop goes on. Sentinels: [ErrClosed],
// [ErrRunning].
package hub
