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
// The hub has one owner at a time: the goroutine that holds it. Run,
// RunOnce and Drive make their caller the driver for as long as they
// last; Call makes its caller the driver while it waits for its function,
// if nobody else drives; Close holds the hub while it closes it; TryOwn
// makes its caller the owner for the duration of one short function that
// runs no loop work. Loop work (callbacks, posts, timers, tick hooks,
// dispatch) runs only on a driver, never on a goroutine that merely hands
// work in.
//
// Post, Call, Stop, Close, Wake and TryOwn are safe for concurrent use.
// Every other method is hub-only: it must be called by the hub's owner,
// that is from loop work, from a TryOwn function, or by the goroutine that
// owns the hub while nobody holds it (setting it up before Run, tearing
// down after). Callbacks must not block; hand blocking work to another
// goroutine and come back with Post.
//
// Post is the only door for loop work from other goroutines. It appends to a queue under a
// mutex (posting goroutines and the hub both touch the queue, so the hub
// cannot own it alone) and wakes the poller through its wake-up descriptor
// only while the hub is, or is about to be, blocked in a poll, so many
// posts cost at most one wake-up and posts made by the hub itself cost
// none. TryOwn is for synchronous code that must change hub-owned state
// while nobody drives the hub (the channel package settles a Get and Ack
// loop's acknowledgements with it); a second mutex orders TryOwn callers.
//
// Misuse is an error, not a hang. Close, Call (and Run, RunOnce and Drive
// where they would wait) called from loop work return [ErrInCallback] at
// once: the hub would wait for itself. [InCallback] tells such code apart.
// A hub-only method called from another goroutine while the hub is held
// is reported with [ErrNotOwner]: the methods that return an error always
// refuse such a call made while the driver is blocked in its poll, and with
// [Options.CheckOwner] every hub-only method checks every call (this
// project's tests turn it on with KOMBU_HUB_CHECKOWNER=1).
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
// [ErrRunning], [ErrNotRegistered], [ErrInCallback], [ErrNotOwner].
package hub
