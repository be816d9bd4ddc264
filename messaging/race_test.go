//go:build race

package messaging_test

// raceEnabled reports a -race build, where timing is not asserted on the
// brokers (see TestHubLatencyUnderBomb).
const raceEnabled = true
