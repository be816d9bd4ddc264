package hub

// Sleeping reports whether the driver is in, or about to enter, a blocking
// poll: tests wait for it before checking what a call made meanwhile does.
func (h *Hub) Sleeping() bool { return h.sleeping.Load() }
