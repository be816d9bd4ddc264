// Package timer is the hub's timer queue: Kombu's Timer (call_at, call_after,
// call_repeatedly) as a single-owner min-heap with lazy cancellation.
//
// A [Heap] holds [Entry] values ordered by deadline. [Heap.At] and
// [Heap.After] schedule a callback once, [Heap.Every] schedules it
// repeatedly. The owner asks [Heap.Until] how long it may sleep, then calls
// [Heap.PopDue] in a loop to collect the callbacks that are due and runs them
// itself. The heap never calls a callback and never starts a goroutine.
//
// # Design
//
// The layout follows the Go runtime's per-P timer heap (runtime/time.go):
//
//   - A 4-ary min-heap. It is shallower than a binary heap, and a sift-down
//     compares four children that sit next to each other in memory. Each slot
//     stores its deadline and sequence number inline, so comparisons never
//     dereference an Entry.
//   - Deadlines are int64 nanoseconds since an epoch read from the [Clock] at
//     [New]; conversion uses [time.Time.Sub], so with the real clock the
//     monotonic readings are compared and wall-clock jumps have no effect.
//     Values that do not fit saturate at the int64 range (about 292 years
//     either side of the epoch), so far-past deadlines are simply due and
//     far-future ones wait.
//   - Equal deadlines fire in the order they were scheduled (FIFO): every
//     schedule and every re-arm of a repeating entry takes the next value of a
//     sequence counter that breaks ties.
//   - [Entry.Cancel] only marks the entry (a tombstone, the runtime's
//     "zombie") and counts it. Cancelled entries are dropped when they reach
//     the top of the heap, and the whole heap is compacted (tombstones removed
//     and the heap rebuilt in O(n)) as soon as tombstones make up more than a
//     quarter of it, so cancelled entries never dominate memory. Cancel is
//     therefore O(1) amortised, and no index into the heap is maintained.
//   - Scheduling allocates the Entry and nothing else (beyond amortised growth
//     of the heap's slice). A repeating entry is re-armed in place: the same
//     Entry is reused for every run, so Cancel on it stops the series, as in
//     Kombu.
//
// Kombu's Timer differs in two ways that the owner handles: it fires at most
// max_timers entries per loop turn (the hub calls PopDue at most that many
// times), and it caps the poll timeout at max_interval (the hub passes its cap
// to Until).
//
// # Concurrency
//
// Not safe for concurrent use; owned by the hub. Every method of [Heap] and
// [Entry], Cancel included, must be called on the goroutine that owns the
// heap. Callbacks returned by PopDue may schedule and cancel entries of the
// same heap, including their own entry.
//
// # Errors
//
// No method returns an error. Two programmer errors panic: scheduling a nil
// callback, and [Heap.Every] with a period that is not positive (as
// [time.NewTicker] does).
package timer
