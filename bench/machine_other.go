//go:build !linux

package bench

// machineTicks reports nothing off Linux (no /proc/stat).
func machineTicks() (busy, total uint64, ok bool) { return 0, 0, false }
