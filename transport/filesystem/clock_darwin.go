package filesystem

import "golang.org/x/sys/unix"

// monotonicMillis is Python's time.monotonic() in milliseconds on macOS,
// which reads mach_absolute_time: CLOCK_UPTIME_RAW.
func monotonicMillis() int64 { return clockMillis(unix.CLOCK_UPTIME_RAW) }
