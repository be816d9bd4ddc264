package filesystem

import "golang.org/x/sys/unix"

// monotonicMillis is Python's time.monotonic() in milliseconds on FreeBSD
// (CLOCK_MONOTONIC).
func monotonicMillis() int64 { return clockMillis(unix.CLOCK_MONOTONIC) }
