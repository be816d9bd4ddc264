//go:build race

package resp_test

// raceEnabled turns off allocation-count assertions: the race detector
// changes what allocates.
const raceEnabled = true
