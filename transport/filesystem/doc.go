// Package filesystem is Kombu's filesystem transport ("filesystem://"):
// messages are files in a folder, so a Python Kombu 5.2.4 service and a Go
// service exchange messages through one directory, both ways.
//
// # Layout (Kombu's, kombu/transport/filesystem.py 5.2.4)
//
// Publishing writes a message of queue q to data_folder_out as the file
// "<ms>_<uuid>.<q>.msg", holding Kombu's JSON envelope (body base64), where
// ms is int(round(time.monotonic()*1000)): CLOCK_MONOTONIC on Linux and
// FreeBSD, CLOCK_UPTIME_RAW on macOS, the clocks Python reads, so files of
// both writers sort together. Consuming lists data_folder_in, sorts the
// names and takes the oldest file of the queue. Options (Kombu's names and
// defaults): data_folder_in "data_in", data_folder_out "data_out",
// store_processed false, processed_folder "processed", polling_interval 1s;
// see [Options]. Kombu 5.2.4 has no control_folder: exchanges and bindings
// live in the process (its global_state), and so they do here, shared by
// every filesystem connection of the process; fanout, which Kombu 5.2.4
// refuses, writes one file per queue bound in this process.
//
// # Where we differ from Kombu, and why
//
//   - Writing: Kombu opens the final name, flocks it, writes through
//     Python's buffer and unlocks before the buffer is flushed at close, so
//     a reader can see an empty file (its readers take no lock). We write a
//     temporary name (".kombu-go-tmp-*", which Kombu's substring match
//     ignores) and rename it: no reader, ours or Kombu's, sees a partial
//     file. Reading, we leave an empty file younger than a second to its
//     writer and look again 20ms later; an older one is delivered as a
//     malformed message (decode-error path).
//   - Claiming and acknowledging: Kombu's _get moves the file to
//     processed_folder (or the temp dir) and deletes it (unless
//     store_processed) before the application has seen it; the
//     acknowledgement is only in memory (virtual QoS). A consumer killed
//     with kill -9 loses every message it had taken and not acknowledged
//     (its prefetch window plus the one being handled), and a graceful
//     Kombu close restores them by re-publishing to data_folder_out, which
//     is the other side's folder when the two differ. Here a message is
//     claimed by renaming its file into the connection's own folder
//     data_folder_in/.kombu-go/<id>/, deleted (or moved to processed_folder)
//     only on ack or reject, and given back to data_folder_in, marked
//     redelivered, on requeue (a new name: the back of the queue), on
//     restore (its own name: the front) and on close. Each connection holds
//     an flock on data_folder_in/.kombu-go/<id>.lock for its life; the
//     kernel drops it when the process dies, however it dies. Every
//     connection looks for unlocked lock files at Dial and every
//     recover_interval (5s) and gives the dead connection's claims back.
//     So a killed Go consumer loses nothing; what it had acknowledged but
//     not yet deleted may be delivered again (at least once). Renames
//     within one file system are atomic, so of several consumers (Go or
//     Kombu, whose _get is a rename when processed_folder or the temp dir is
//     on the same file system) exactly one takes a file.
//   - Queue matching: Kombu takes any name containing ".<q>.msg", so its
//     consumer of "b" also takes files of queue "a.b". We parse the name:
//     the queue is everything between the first dot and ".msg".
//   - Ordering: Kombu sorts names as strings; we sort by the number, then
//     the name (the same order except where the number of digits grows).
//     Our uuids start with a per-process counter, so one process's messages
//     of the same millisecond keep their publish order.
//   - Listing: Kombu lists and sorts the folder for every message it
//     takes, quadratic in the backlog. Here one listing serves a
//     consumer's claiming passes for 50ms (files gone meanwhile are
//     skipped; one more listing is made before the passes stop, so a file
//     that arrived meanwhile is not missed).
//   - Waking: Kombu polls every polling_interval. We watch data_folder_in:
//     an inotify descriptor (IN_CLOSE_WRITE, IN_MOVED_TO) on Linux, a
//     kqueue with EVFILT_VNODE NOTE_WRITE on the folder on macOS and
//     FreeBSD, registered in the hub's poller with hub.AddReader like any
//     socket. inotify names the file, so only the channels consuming that
//     queue look; kqueue does not, so every consuming channel looks. Where
//     no watch can be set up (another OS, inotify limits), when it is lost
//     (the folder removed or moved) or with watch=false, a hub timer polls
//     every polling_interval, Kombu's behaviour, and tries to watch again.
//
// # Concurrency
//
// No goroutine per queue or per channel. Each connection owns one executor
// goroutine that does the consumer-side file work of all its channels in
// order: the claiming passes (list the folder, rename, read, decode), the
// deletes of acknowledgements, the write-backs of requeues and restores,
// and the recovery passes. Results come back to the hub with hub.Post and
// are delivered there within the prefetch window (a pushing store,
// channel.Deliver). The hub itself only reads the watch descriptor
// (non-blocking) and runs timers. Why not read the small files on the hub:
// a claim is a stat, a rename, an open, a read and a close, and a
// listing reads the whole folder. Measured on the development VM (ext4,
// page cache warm, machine busy; BenchmarkClaimOne, BenchmarkScan), a
// claim and its delete took 50–140 µs and a listing of 1,000 files
// 1.1–3.6 ms: already tens of hub turns, and these are blocking system
// calls with no bound: on a network or stalled disk (NFS, a saturated
// device) one call can take seconds, and every socket and timer of the hub
// would wait. The executor costs one goroutine per connection and one
// Post per batch of up to 256 messages.
//
// Publish, Get, Size, Purge and the declarations run on the caller's
// goroutine and may block on the disk (a Publish from a consumer callback
// blocks the hub for one file write; publish from another goroutine when
// that matters). All are safe for concurrent use. Close closes the
// channels (restoring their unacknowledged messages), stops the watch and
// the timers on the hub, runs the executor's remaining work, joins it, and
// removes the connection's claim folder and lock file; from a hub callback
// it returns hub.ErrInCallback.
//
// # Errors
//
// A missing or unusable folder is a connection error
// (transport.IsConnectionError, a *transport.BrokerError of
// KindConnection), at Dial and at every publish, so messaging's ensure and
// retry treat an unreachable folder like an unreachable broker; consumers
// log a failed claiming pass and try again after polling_interval. A queue
// name that cannot be part of a file name ("/" or NUL) is refused. A file
// that is not a Kombu envelope is delivered with Err set (matching
// transport.ErrBadEnvelope), its raw bytes as the body, never dropped.
// Unknown transport options are errors (transport.OptionError). Failed
// settlements are logged and returned by Channel.Close; their files stay
// claimed and a recovery pass gives them back once the connection is gone.
package filesystem
