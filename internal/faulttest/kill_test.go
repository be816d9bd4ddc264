package faulttest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// trickleRate is the publish rate of the trickle cases, in messages per
// second: the consumer spends most of its time waiting in BRPOP.
const trickleRate = 1000

// TestFaultKill kills the consumer process with SIGKILL at random moments
// (20–400 ms after it started consuming), restarting it each time, while
// messages are published; then a last consumer drains. Nothing may be
// lost, a kill may redeliver at most the killed consumer's unacknowledged
// window (prefetch + 1 with the message being written), and Redis must end
// with no message key left.
//
// Cases: prefetch 1 and 100; trickle (1,000 msg/s published throughout)
// and backlog (the queues kept at least a few thousand messages deep, the
// consumer draining); one queue and many.
func TestFaultKill(t *testing.T) {
	url := redisURL(t)
	sc := runScale(t)
	for _, prefetch := range []int{1, 100} {
		t.Run(fmt.Sprintf("prefetch%d", prefetch), func(t *testing.T) {
			for _, mode := range []string{"trickle", "backlog"} {
				t.Run(mode, func(t *testing.T) {
					for _, nq := range []int{1, sc.queues} {
						t.Run(fmt.Sprintf("queues%d", nq), func(t *testing.T) {
							killCase(t, url, sc.kills, prefetch, mode, nq)
						})
					}
				})
			}
		})
	}
}

func killCase(t *testing.T, url string, kills, prefetch int, mode string, nqueues int) {
	e := newEnv(t, url, nqueues, prefetch)
	var pub *publisher
	switch mode {
	case "trickle":
		pub = e.startTrickle(trickleRate)
	case "backlog":
		low := 2000 + 30*prefetch
		e.fill(2 * low)
		pub = e.startBacklog(low, 1000)
	}
	for k := 1; k <= kills; k++ {
		c := e.startConsumer(url)
		e.waitReady(c)
		d := 20*time.Millisecond + rand.N(381*time.Millisecond)
		time.Sleep(d)
		e.fault("kill %d of consumer #%d, %v after it consumed", k, c.n, d.Round(time.Millisecond))
		e.kill(c)
	}
	if n, err := pub.stop(); n > 0 {
		t.Errorf("%d publishes failed, though Redis was never disturbed; the first: %v", n, err)
	}
	e.finish(t.Name(), url, kills, nil)
}
