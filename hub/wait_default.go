package hub

// defaultWait is the wait mode measured best; see the README's benchmark
// section and `kombu poller-bench`.
const defaultWait = WaitNetpoll
