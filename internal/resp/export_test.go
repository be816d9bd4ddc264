package resp

// Internals for the tests of package resp_test.

const (
	MinBuf    = minBuf
	RetainBuf = retainBuf
)

// BufCap returns the capacity of the input buffer.
func (r *Reader) BufCap() int { return cap(r.buf) }

// ScratchCap returns the capacities of the value stack and the arena.
func (r *Reader) ScratchCap() (vals, arena int) { return cap(r.vals), cap(r.arena) }

// HeaderLen is headerLen.
var HeaderLen = headerLen
