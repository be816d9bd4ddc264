package bench

import (
	"os"
	"strconv"
	"strings"
)

// machineTicks returns the clock ticks all CPUs of the machine spent busy
// and in all, from the first line of /proc/stat (idle and iowait count as
// not busy); ok is false when it cannot be read.
func machineTicks() (busy, total uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest time is counted in user already
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, true
}
