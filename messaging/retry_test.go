package messaging_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

func secs(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, s := range v {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

func TestIntervals(t *testing.T) {
	// retry_over_time defaults: 2, 4, ..., 30, 32, 32 (the cap is
	// interval_max + interval_start).
	got := messaging.Intervals(messaging.RetryPolicy{}, 2*time.Second, 2*time.Second, 30*time.Second, 18)
	want := secs(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 32, 32)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults: %v, want %v", got, want)
	}
	// ensure() defaults (1, 1, 1): 1, 2, 2 ...
	got = messaging.Intervals(messaging.RetryPolicy{}, time.Second, time.Second, time.Second, 4)
	if want := secs(1, 2, 2, 2); !reflect.DeepEqual(got, want) {
		t.Errorf("ensure defaults: %v, want %v", got, want)
	}
	// Negative means zero: no sleep at all.
	got = messaging.Intervals(messaging.RetryPolicy{IntervalStart: -1, IntervalStep: -1, IntervalMax: -1}, time.Second, time.Second, time.Second, 3)
	if want := secs(0, 0, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("zero intervals: %v, want %v", got, want)
	}
}

// Kombu test case 59 (test_retry_over_time).
func TestRetryOverTime(t *testing.T) {
	errFail := &transport.BrokerError{Kind: transport.KindConnection, Reason: "down"}
	t.Run("intervals", func(t *testing.T) {
		clk := newFakeClock()
		var seen []time.Duration
		calls := 0
		err := messaging.RetryWithClock(context.Background(), clk.now, clk.sleep,
			messaging.RetryPolicy{IntervalMax: 14 * time.Second, Errback: func(err error, d time.Duration) {
				if !errors.Is(err, errFail) {
					t.Errorf("errback got %v", err)
				}
				seen = append(seen, d)
			}}, nil,
			func(context.Context) error {
				calls++
				if calls < 10 {
					return errFail
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if want := secs(2, 4, 6, 8, 10, 12, 14, 16, 16); !reflect.DeepEqual(seen, want) {
			t.Errorf("errback intervals %v, want %v", seen, want)
		}
		if got, want := clk.total(), 88*time.Second; got != want {
			t.Errorf("slept %v, want %v", got, want)
		}
		// Sleeps go in whole seconds, as Kombu's.
		for _, d := range clk.sleeps {
			if d > time.Second {
				t.Fatalf("slept %v in one go", d)
			}
		}
	})
	for _, tc := range []struct {
		name     string
		max      int
		attempts int
	}{{"max_retries=0", messaging.NoRetries, 1}, {"max_retries=1", 1, 2}, {"max_retries=3", 3, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			calls := 0
			err := messaging.RetryWithClock(context.Background(), clk.now, clk.sleep, messaging.RetryPolicy{MaxRetries: tc.max}, nil,
				func(context.Context) error { calls++; return errFail })
			if !errors.Is(err, errFail) {
				t.Errorf("err = %v", err)
			}
			if calls != tc.attempts {
				t.Errorf("%d attempts, want %d", calls, tc.attempts)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		clk := newFakeClock()
		calls := 0
		err := messaging.RetryWithClock(context.Background(), clk.now, clk.sleep, messaging.RetryPolicy{Timeout: time.Second}, nil,
			func(context.Context) error { calls++; return errFail })
		if !errors.Is(err, errFail) {
			t.Errorf("err = %v", err)
		}
		// The first failure is within the deadline: sleep 2 s, then the
		// second failure is past it.
		if calls != 2 {
			t.Errorf("%d attempts, want 2", calls)
		}
	})
	t.Run("not retryable", func(t *testing.T) {
		clk := newFakeClock()
		calls := 0
		bad := errors.New("bad request")
		err := messaging.RetryWithClock(context.Background(), clk.now, clk.sleep, messaging.RetryPolicy{}, nil,
			func(context.Context) error { calls++; return bad })
		if !errors.Is(err, bad) || calls != 1 {
			t.Errorf("err = %v after %d calls, want bad after 1", err, calls)
		}
	})
	t.Run("callback", func(t *testing.T) {
		clk := newFakeClock()
		calls, cbs := 0, 0
		_ = messaging.RetryWithClock(context.Background(), clk.now, clk.sleep,
			messaging.RetryPolicy{MaxRetries: 1, IntervalStart: 2500 * time.Millisecond, Callback: func() { cbs++ }}, nil,
			func(context.Context) error { calls++; return errFail })
		// One call before the sleep, one before each whole second (2).
		if cbs != 3 {
			t.Errorf("callback called %d times, want 3", cbs)
		}
		if want := secs(1, 1, 0.5); !reflect.DeepEqual(clk.sleeps, want) {
			t.Errorf("sleeps %v, want %v", clk.sleeps, want)
		}
	})
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		clk := newFakeClock()
		calls := 0
		err := messaging.RetryWithClock(ctx, clk.now, clk.sleep, messaging.RetryPolicy{}, nil,
			func(context.Context) error {
				calls++
				if calls == 3 {
					cancel()
				}
				return errFail
			})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errFail) {
			t.Errorf("err = %v, want Canceled and the last error", err)
		}
		if calls != 3 {
			t.Errorf("%d calls", calls)
		}
	})
}
