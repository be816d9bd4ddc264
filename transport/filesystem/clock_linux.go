package filesystem

import "golang.org/x/sys/unix"

// monotonicMillis is Python's int(round(time.monotonic()*1000)) on Linux:
// CLOCK_MONOTONIC, shared by every process of the machine, so Python's and
// our file names order the same way.
func monotonicMillis() int64 { return clockMillis(unix.CLOCK_MONOTONIC) }
