//go:build linux || darwin || freebsd

package filesystem

import (
	"time"

	"golang.org/x/sys/unix"
)

// clockMillis reads clock id rounded to milliseconds (Python rounds), or
// falls back to the wall clock if the system refuses.
func clockMillis(id int32) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return time.Now().UnixMilli()
	}
	ns := ts.Nano()
	return (ns + 500_000) / 1_000_000
}
