package faulttest

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"
)

// TestFaultReset runs one consumer process that reaches Redis through a
// proxy, and resets every connection of the proxy at once (the consumer
// sees a RST on each) every 50–300 ms while messages are published. The
// same consumer then drains: it must recover from every reset, lose
// nothing, redeliver at most the unacknowledged window per reset, and
// leave no message key in Redis.
func TestFaultReset(t *testing.T) {
	raw := redisURL(t)
	sc := runScale(t)
	for _, c := range []struct{ prefetch, queues int }{{1, 1}, {100, sc.queues}} {
		t.Run(fmt.Sprintf("prefetch%d", c.prefetch), func(t *testing.T) {
			t.Run(fmt.Sprintf("queues%d", c.queues), func(t *testing.T) {
				resetCase(t, raw, sc.resets, c.prefetch, c.queues)
			})
		})
	}
}

func resetCase(t *testing.T, raw string, resets, prefetch, nqueues int) {
	e := newEnv(t, raw, nqueues, prefetch)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	proxied := u.String()

	pub := e.startTrickle(trickleRate)
	c := e.startConsumer(proxied)
	e.waitReady(c)
	faults := 0
	for i := 1; i <= resets; i++ {
		time.Sleep(50*time.Millisecond + rand.N(251*time.Millisecond))
		n := proxy.ResetAll()
		e.fault("reset %d: %d connections", i, n)
		if n > 0 {
			faults++
		}
	}
	if n, err := pub.stop(); n > 0 {
		t.Errorf("%d publishes failed, though the publisher does not go through the proxy; the first: %v", n, err)
	}
	e.finish(t.Name(), proxied, faults, c)
}
