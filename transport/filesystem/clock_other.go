//go:build !linux && !darwin && !freebsd

package filesystem

import "time"

// monotonicMillis has no shared monotonic clock to read here: the wall
// clock in milliseconds. File names still sort in publish order within
// this process; against Python writers on the same folder the order is
// only as good as the two clocks agree.
func monotonicMillis() int64 { return time.Now().UnixMilli() }
