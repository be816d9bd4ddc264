package celery

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// storeTimeout bounds a result write, a retry's publish and an event.
const storeTimeout = 10 * time.Second

// execute runs one task on a pool goroutine and settles its message.
func (w *Worker) execute(poolCtx context.Context, body any, m *messaging.Message) error {
	t := body.(*Task)
	w.mu.Lock()
	e := w.tasks[t.Name]
	w.mu.Unlock()
	acksLate := w.opts.AcksLate || e.opts.AcksLate
	if !t.Expires.IsZero() && time.Now().After(t.Expires) {
		w.revoke(t, m, "expired")
		return nil
	}
	if !acksLate {
		m.AckLogError(w.log)
	}
	w.mu.Lock()
	w.active[t.ID] = activeTask{t: t, started: time.Now()}
	w.mu.Unlock()
	w.ev.task(t, "task-started", nil)
	start := time.Now()
	result, err := w.call(poolCtx, t, e)
	runtime := time.Since(start)
	w.mu.Lock()
	delete(w.active, t.ID)
	w.mu.Unlock()
	w.total.Add(1)
	n, _ := w.processed.LoadOrStore(t.Name, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ignore := t.IgnoreResult || e.opts.IgnoreResult
	var rej *RejectError
	var retry *RetryError
	switch {
	case err == nil:
		if !ignore {
			w.store(ctx, t, Meta{TaskID: t.ID, Status: Success, Result: result, DateDone: time.Now()})
		}
		w.ev.task(t, "task-succeeded", map[string]any{"result": repr(result), "runtime": runtime.Seconds()})
	case errors.As(err, &rej):
		if !acksLate {
			w.log.Warn("celery: Reject from a task acknowledged before it ran (acks_late off)", "id", t.ID)
			return nil
		}
		if rej.Requeue {
			if rerr := m.Requeue(); rerr != nil {
				w.log.Error("celery: requeue", "id", t.ID, "err", rerr)
			}
		} else {
			m.RejectLogError(w.log)
		}
		w.ev.task(t, "task-rejected", map[string]any{"requeue": rej.Requeue})
		return nil
	case errors.As(err, &retry):
		if w.retry(ctx, t, e, retry, ignore) {
			break
		}
		err = &TaskError{Type: "MaxRetriesExceededError", Module: "celery.exceptions",
			Message: fmt.Sprintf("Can't retry %s[%s] args:%v kwargs:%v", t.Name, t.ID, t.Args, t.Kwargs)}
		fallthrough
	default:
		te := asTaskError(err)
		if te.Traceback == "" {
			te.Traceback = traceback(t, te)
		}
		if !ignore {
			w.store(ctx, t, Meta{TaskID: t.ID, Status: Failure, Result: te.exception(), Traceback: te.Traceback,
				DateDone: time.Now()})
		}
		w.ev.task(t, "task-failed", map[string]any{"exception": te.Error(), "traceback": te.Traceback})
	}
	if acksLate {
		m.AckLogError(w.log)
	}
	return nil
}

// call runs the handler under the time limits. A handler past its hard
// limit is recorded as failed (TimeLimitExceeded) and its context
// cancelled; Go cannot stop it, so its goroutine is waited for by Run.
func (w *Worker) call(poolCtx context.Context, t *Task, e taskEntry) (any, error) {
	hard := firstPositive(t.TimeLimit, e.opts.TimeLimit, w.opts.TimeLimit)
	soft := firstPositive(t.SoftTimeLimit, e.opts.SoftTimeLimit, w.opts.SoftTimeLimit)
	ctx := context.WithValue(poolCtx, ctxKey{}, t)
	var cancel context.CancelFunc = func() {}
	if soft > 0 {
		ctx, cancel = context.WithTimeout(ctx, soft)
	} else if hard > 0 {
		ctx, cancel = context.WithTimeout(ctx, hard)
	}
	if hard <= 0 {
		defer cancel()
		res, err := safeCall(ctx, e.h, t)
		return res, w.softLimit(ctx, soft, err)
	}
	type out struct {
		res any
		err error
	}
	done := make(chan out, 1)
	w.strays.Add(1)
	go func() { // joined by Run through strays
		defer w.strays.Done()
		defer cancel()
		res, err := safeCall(ctx, e.h, t)
		done <- out{res, err}
	}()
	timer := time.NewTimer(hard)
	defer timer.Stop()
	select {
	case o := <-done:
		return o.res, w.softLimit(ctx, soft, o.err)
	case <-timer.C:
		cancel()
		return nil, &TaskError{Type: "TimeLimitExceeded", Module: "billiard.exceptions",
			Message: fmt.Sprintf("TimeLimitExceeded(%v,)", hard.Seconds())}
	}
}

// softLimit turns an error caused by the soft time limit into
// SoftTimeLimitExceeded.
func (w *Worker) softLimit(ctx context.Context, soft time.Duration, err error) error {
	if err != nil && soft > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) &&
		errors.Is(err, context.DeadlineExceeded) {
		return &TaskError{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions",
			Message: fmt.Sprintf("SoftTimeLimitExceeded(%v)", soft.Seconds())}
	}
	return err
}

// safeCall runs the handler, turning a panic into a failure with the
// stack as traceback.
func safeCall(ctx context.Context, h Handler, t *Task) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &TaskError{Type: "Exception", Module: "builtins", Message: fmt.Sprintf("panic: %v", p),
				Traceback: fmt.Sprintf("Traceback (most recent call last):\n%s\nException: panic: %v\n", debug.Stack(), p)}
		}
	}()
	return h(ctx, t.Args, t.Kwargs)
}

func firstPositive(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

// traceback is the text stored for a Go error, shaped like Python's.
func traceback(t *Task, te *TaskError) string {
	return fmt.Sprintf("Traceback (most recent call last):\n  File \"<go>\", in %s\n%s: %s\n", t.Name, te.Type, te.Message)
}

// retry re-sends the task with retries+1 and its countdown, and stores
// RETRY; false when the task has no retries left.
func (w *Worker) retry(ctx context.Context, t *Task, e taskEntry, r *RetryError, ignore bool) bool {
	max := e.opts.MaxRetries
	if r.MaxRetries != nil {
		max = *r.MaxRetries
	}
	if max >= 0 && t.Retries >= max {
		return false
	}
	o := CallOptions{Args: t.Args, Kwargs: t.Kwargs, TaskID: t.ID, Retries: t.Retries + 1, ETA: r.ETA,
		Countdown: r.Countdown, ParentID: t.ParentID, RootID: t.RootID, GroupID: t.GroupID,
		TimeLimit: t.TimeLimit, SoftTimeLimit: t.SoftTimeLimit, IgnoreResult: t.IgnoreResult, Priority: t.Priority}
	if o.ETA.IsZero() && o.Countdown <= 0 {
		o.Countdown = e.opts.DefaultRetryDelay
	}
	if !t.Expires.IsZero() {
		o.Expires = t.Expires
	}
	msg, err := buildMessage(t.Name, t.ID, origin(), t.ReplyTo, o)
	if err == nil {
		msg.opts.CorrelationID = firstNonEmpty(t.CorrelationID, t.ID)
		ex := messaging.Exchange{Name: t.Exchange, NoDeclare: true}
		msg.opts.Exchange, msg.opts.RoutingKey = &ex, t.RoutingKey
		err = w.pub.Publish(ctx, msg.body, msg.opts)
	}
	reason := r.Err
	if reason == nil {
		reason = errors.New("Retry in " + o.Countdown.String())
	}
	if err != nil {
		w.log.Error("celery: cannot re-send task for retry", "id", t.ID, "err", err)
		return false
	}
	te := asTaskError(reason)
	te.Type, te.Module = "Retry", "celery.exceptions"
	if !ignore {
		w.store(ctx, t, Meta{TaskID: t.ID, Status: Retry, Result: te.exception(), Traceback: traceback(t, te)})
	}
	w.ev.task(t, "task-retried", map[string]any{"exception": te.Error(), "traceback": traceback(t, te)})
	return true
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// revoke records a task revoked before it ran (expired) and acknowledges
// its message.
func (w *Worker) revoke(t *Task, m *messaging.Message, why string) {
	w.log.Info("celery: task revoked", "id", t.ID, "task", t.Name, "why", why)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	te := &TaskError{Type: "TaskRevokedError", Module: "celery.exceptions", Message: why}
	w.store(ctx, t, Meta{TaskID: t.ID, Status: Revoked, Result: te.exception(), DateDone: time.Now()})
	w.ev.task(t, "task-revoked", map[string]any{"expired": why == "expired", "terminated": false})
	m.AckLogError(w.log)
}

// store writes a state to the result backend, logging failures.
func (w *Worker) store(ctx context.Context, t *Task, meta Meta) {
	if w.backend == nil {
		return
	}
	if err := w.backend.Store(ctx, t, meta); err != nil {
		w.log.Error("celery: cannot store result", "id", t.ID, "state", meta.Status, "err", err)
	}
}
