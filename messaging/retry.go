package messaging

import (
	"context"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// NoRetries is the RetryPolicy.MaxRetries value for a single attempt
// (Kombu's max_retries=0).
const NoRetries = -1

// RetryPolicy is Kombu's retry policy (the keyword arguments of
// retry_over_time, ensure_connection and ensure). The zero value means
// "Kombu's defaults for the call it is passed to":
//
//	call                      intervals (start, step, max)   sleeps
//	Connection.EnsureConnection    2 s, 2 s, 30 s             2, 4, ..., 30, 32, 32 ...
//	Connection.Ensure              1 s, 1 s, 1 s              1, 2, 2 ...
//
// The sleep before retry n is start + n*step, capped at max + start (the cap
// is 32 s with the defaults, not 30: Kombu's fxrange(start, max+start,
// step, repeatlast=True)). Every wait also ends when the context ends.
type RetryPolicy struct {
	// MaxRetries bounds the retries: N > 0 allows N retries, so N+1
	// attempts. Default (0): no bound (Kombu's max_retries=None); the
	// context and Timeout still end the loop. NoRetries (-1): one attempt
	// (Kombu's max_retries=0).
	MaxRetries int
	// IntervalStart is the first sleep. Default: see the table above; a
	// negative value means no sleep.
	IntervalStart time.Duration
	// IntervalStep is added to the sleep after each retry. Default: see the
	// table; negative means 0.
	IntervalStep time.Duration
	// IntervalMax caps the growth of the sleep (the cap is IntervalMax +
	// IntervalStart). Default: see the table; negative means 0.
	IntervalMax time.Duration
	// Timeout stops retrying once this much time has passed since the first
	// attempt: a failure after the deadline is returned. Default (0): no
	// limit besides the context.
	Timeout time.Duration
	// Errback is called after each failed attempt that will be retried,
	// with the error and the sleep that follows (Kombu's errback(exc,
	// interval)). It runs on the retrying goroutine.
	Errback func(err error, interval time.Duration)
	// Callback is called before each retry and about every second while
	// sleeping (Kombu's callback).
	Callback func()
	// OnRevive is called by Connection.Ensure with the new default channel
	// after a reconnection (Kombu's on_revive).
	OnRevive func(ch transport.Channel)
	// RetryOn, if set, makes Connection.Ensure retry other errors it
	// returns true for, right away and at most MaxRetries times (Kombu's
	// retry_errors, which also requires max_retries).
	RetryOn func(err error) bool
}

func (p RetryPolicy) withDefaults(start, step, max time.Duration) RetryPolicy {
	fix := func(v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = 0
		}
	}
	fix(&p.IntervalStart, start)
	fix(&p.IntervalStep, step)
	fix(&p.IntervalMax, max)
	return p
}

// limited reports whether retries are bounded, and the bound.
func (p RetryPolicy) limit() (int, bool) {
	switch {
	case p.MaxRetries < 0:
		return 0, true
	case p.MaxRetries > 0:
		return p.MaxRetries, true
	}
	return 0, false
}

// intervals is Kombu's fxrange(start, max+start, step, repeatlast=True):
// start, start+step, ... up to max+start, then the last value forever. A
// zero stop (start and max both 0) means no cap, as in fxrange.
type intervals struct {
	cur, step, stop time.Duration
}

func newIntervals(p RetryPolicy) *intervals {
	return &intervals{cur: p.IntervalStart, step: p.IntervalStep, stop: p.IntervalMax + p.IntervalStart}
}

// next returns the next interval.
func (it *intervals) next() time.Duration {
	if it.stop == 0 || it.cur <= it.stop {
		v := it.cur
		it.cur += it.step
		return v
	}
	return it.cur - it.step
}

// clock is the time source of the retry loops: real by default, fake in
// tests (see export_test.go), so that tests never sleep.
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

var realClock = clock{now: time.Now, sleep: sleepCtx}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryOverTime is Kombu's retry_over_time. It calls fn until it succeeds,
// fails with an error catch does not accept, the retries are exhausted, the
// policy's timeout has passed, or ctx ends (which returns the last error
// joined with ctx.Err()). next returns the sleep after a failure (Kombu's
// errback(exc, intervals, retries)); nil means "the next interval". It
// returns the number of attempts made with the error.
func retryOverTime(ctx context.Context, clk clock, p RetryPolicy, catch func(error) bool,
	fn func(ctx context.Context) error, next func(err error, it *intervals, retries int) time.Duration) (int, error) {
	it := newIntervals(p)
	max, limited := p.limit()
	var end time.Time
	if p.Timeout > 0 {
		end = clk.now().Add(p.Timeout)
	}
	for retries := 0; ; retries++ {
		err := fn(ctx)
		if err == nil {
			return retries + 1, nil
		}
		if !catch(err) {
			return retries + 1, err
		}
		if limited && retries >= max {
			return retries + 1, err
		}
		if !end.IsZero() && clk.now().After(end) {
			return retries + 1, err
		}
		if ctx.Err() != nil {
			return retries + 1, joinCtx(err, ctx)
		}
		if p.Callback != nil {
			p.Callback()
		}
		var tts time.Duration
		if next != nil {
			tts = next(err, it, retries)
		} else {
			tts = it.next()
		}
		// Kombu sleeps in whole seconds, calling callback before each, then
		// the remainder.
		for tts > 0 {
			step := min(tts, time.Second)
			if step == time.Second && p.Callback != nil {
				p.Callback()
			}
			if serr := clk.sleep(ctx, step); serr != nil {
				return retries + 1, joinCtx(err, ctx)
			}
			tts -= step
		}
	}
}

// joinCtx reports err as the reason a retry loop ended with its context.
type ctxError struct {
	err, ctx error
}

func (e *ctxError) Error() string   { return e.ctx.Error() + ": last error: " + e.err.Error() }
func (e *ctxError) Unwrap() []error { return []error{e.ctx, e.err} }

func joinCtx(err error, ctx context.Context) error {
	return &ctxError{err: err, ctx: context.Cause(ctx)}
}

// Retry calls fn until it succeeds, following Kombu's retry_over_time with
// policy p (defaults: intervals 2 s, 2 s, 30 s, unlimited retries): errors
// for which retryable returns true are retried (nil retryable retries
// connection errors, transport.IsConnectionError), others are returned at
// once. When the retries are exhausted or the policy's Timeout passed, the
// last error is returned; when ctx ends first, the error matches both
// ctx.Err() and the last error. Errback is called with each error and the
// sleep that follows.
func Retry(ctx context.Context, p RetryPolicy, retryable func(error) bool, fn func(ctx context.Context) error) error {
	return retryWith(ctx, realClock, p, retryable, fn)
}

func retryWith(ctx context.Context, clk clock, p RetryPolicy, retryable func(error) bool, fn func(ctx context.Context) error) error {
	p = p.withDefaults(2*time.Second, 2*time.Second, 30*time.Second)
	if retryable == nil {
		retryable = transport.IsConnectionError
	}
	_, err := retryOverTime(ctx, clk, p, retryable, fn, func(err error, it *intervals, _ int) time.Duration {
		d := it.next()
		if p.Errback != nil {
			p.Errback(err, d)
		}
		return d
	})
	return err
}
