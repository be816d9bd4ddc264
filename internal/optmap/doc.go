// Package optmap reads Kombu's untyped option maps (a URL's query
// parameters and the transport_options dict) into typed Go fields, in one
// place for every transport.
//
// A [Reader] is made for one map, asked for each known key with a typed
// setter ([Reader.String], [Reader.Bool], [Reader.Int], [Reader.Seconds],
// ...), and finished with [Reader.Err]: the first value that could not be
// coerced, or else every key nobody asked for. Unknown keys are an error on
// purpose: Kombu ignores a misspelt option, and a visibilty_timeout that is
// silently ignored is how messages get redelivered by the million.
//
// Values may be typed (from Go code: bool, int, float64, time.Duration,
// []int, map[string]any ...) or strings (from a URL's query). Durations in
// Kombu's maps are seconds (float); a time.Duration is taken as is.
//
// Concurrency: a Reader is used by one goroutine, while a transport is
// being configured. It starts no goroutines.
//
// Errors: every error is a *[transport.OptionError] naming the key, so
// callers match it with errors.As.
package optmap
