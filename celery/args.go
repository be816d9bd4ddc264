package celery

import (
	"encoding/json"
	"time"
)

// Number reads a numeric task argument as a float64: JSON and msgpack
// decode integers as int64 (or uint64) and other numbers as float64.
func Number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case uint64:
		return float64(n), true
	case int:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// Seconds reads a task argument given in seconds (Celery's countdown,
// time limits) as a duration.
func Seconds(v any) (time.Duration, bool) {
	f, ok := Number(v)
	return time.Duration(f * float64(time.Second)), ok
}
