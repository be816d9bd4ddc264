// Package poller is the readiness poller under the hub: epoll on Linux,
// kqueue on darwin and the BSDs, behind one contract, plus a wake-up that
// other goroutines use to interrupt a wait.
//
// # Contract
//
// Every implementation exports the same concrete type, [Poller], with:
//
//   - [New] creates the poller and its wake-up (eventfd on Linux, EVFILT_USER
//     on darwin, freebsd and dragonfly, a non-blocking pipe on netbsd and
//     openbsd).
//   - Add, Modify and Remove register interest in [Read] and/or [Write] on a
//     file descriptor. Interest is level-triggered: a descriptor that stays
//     ready is reported by every Wait. [Error] (error or hang-up) is always
//     reported and needs no registration. Add of a registered fd and
//     Remove or Modify of an unknown one are errors that match
//     [ErrRegistered] and [ErrNotRegistered].
//   - Wait fills a caller-owned slice with ready descriptors. A negative
//     timeout blocks until something is ready or Wake is called, zero polls
//     without blocking, a positive one bounds the wait. Wait returns early with
//     n == 0 after a signal interrupted the system call (EINTR), so the caller
//     can recompute its timeout from its timers. The wake-up descriptor is
//     drained inside Wait and never reported.
//   - Wake is the only method that is safe for concurrent use. Calls are
//     coalesced by an atomic flag: between two Waits, only the first Wake
//     writes to the wake-up descriptor.
//   - Close releases the poller. Callers must Remove every descriptor before
//     closing it (the kernel's epoll set tracks open file descriptions, not fd
//     numbers, so a closed but registered dup keeps reporting events).
//
// A poller reports descriptor numbers only. Owners that reuse a number must
// drop events that belong to an earlier registration; the hub does this by
// ignoring, for the rest of a batch, every event of an fd it removed while
// dispatching that batch.
//
// # Concurrency
//
// A Poller is owned by one goroutine (the hub's). Only Wake may be called from
// others.
//
// # Errors
//
// System call failures are returned as *os.SyscallError naming the call, so
// errors.Is(err, unix.EBADF) works. On platforms without epoll or kqueue, New
// returns [ErrUnsupported].
package poller
