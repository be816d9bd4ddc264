// Package archtest enforces the module's import policy: which of our packages, and which third-party
// modules, each package may import. It has no API; its test, deps_test.go, is the policy.
//
// The policy is the import table of DESIGN.md ("Import direction"): arrows point down, toward the
// OS. hub, poller and timer never speak of messages, queues or brokers; transports never import
// messaging or each other; messaging reaches the event loop only through hub. The test walks every
// .go file of the module with go/parser (imports only), so it checks every GOOS and build tag at
// once, and it fails for a package the policy does not name: a new package must be placed in the
// graph on purpose. It is modelled on the Go tree's own go/build/deps_test.go.
//
// The table is a statement of policy. Do not relax it to fix a build; move the code instead, or
// change DESIGN.md first and the table with it.
//
// # Concurrency
//
// Nothing here runs concurrently; the test reads files only.
//
// # Errors
//
// A violation is reported as a test error naming the importing file and line, the import, and the
// rule it breaks.
package archtest
