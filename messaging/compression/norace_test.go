//go:build !race

package compression_test

// raceEnabled reports a -race build, where heavy tests skip.
const raceEnabled = false
