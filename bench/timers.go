package bench

import (
	"sync"
	"time"

	"github.com/kombu-go/kombu/timer"
)

// TimerResult holds nanoseconds per operation for the timer comparison.
type TimerResult struct {
	HeapScheduleCancel    float64 `json:"heap_schedule_cancel"`
	HeapScheduleFire      float64 `json:"heap_schedule_fire"`
	AfterFuncScheduleFire float64 `json:"afterfunc_schedule_fire"`
	AfterFuncScheduleStop float64 `json:"afterfunc_schedule_stop"`
}

type frozen struct{ t time.Time }

func (f *frozen) Now() time.Time { return f.t }

// Timers measures n schedule/cancel and schedule/fire operations on the
// hub's heap and on time.AfterFunc, with pending timers in the background
// so that both structures have depth.
func Timers(n, pending int) TimerResult {
	var r TimerResult
	clk := &frozen{t: time.Unix(1_000_000, 0)}
	h := timer.New(clk)
	noop := func() {}
	for i := 0; i < pending; i++ {
		h.After(time.Hour+time.Duration(i), noop)
	}
	t := time.Now()
	for i := 0; i < n; i++ {
		e := h.After(time.Duration(i%1000)*time.Millisecond+time.Second, noop)
		e.Cancel()
	}
	r.HeapScheduleCancel = float64(time.Since(t).Nanoseconds()) / float64(n)

	count := 0
	inc := func() { count++ }
	t = time.Now()
	for i := 0; i < n; i++ {
		h.After(0, inc)
		if fn, ok := h.PopDue(clk.t); ok {
			fn()
		}
	}
	r.HeapScheduleFire = float64(time.Since(t).Nanoseconds()) / float64(n)

	var bg []*time.Timer
	for i := 0; i < pending; i++ {
		bg = append(bg, time.AfterFunc(time.Hour+time.Duration(i), noop))
	}
	t = time.Now()
	for i := 0; i < n; i++ {
		tm := time.AfterFunc(time.Duration(i%1000)*time.Millisecond+time.Second, noop)
		tm.Stop()
	}
	r.AfterFuncScheduleStop = float64(time.Since(t).Nanoseconds()) / float64(n)

	var wg sync.WaitGroup
	wg.Add(n)
	done := func() { wg.Done() }
	t = time.Now()
	for i := 0; i < n; i++ {
		time.AfterFunc(0, done)
	}
	wg.Wait()
	r.AfterFuncScheduleFire = float64(time.Since(t).Nanoseconds()) / float64(n)
	for _, tm := range bg {
		tm.Stop()
	}
	return r
}
