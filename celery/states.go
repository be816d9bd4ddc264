package celery

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is a task state, spelled as Celery stores it (celery.states).
type State string

// The task states.
const (
	Pending  State = "PENDING"
	Received State = "RECEIVED"
	Started  State = "STARTED"
	Success  State = "SUCCESS"
	Failure  State = "FAILURE"
	Revoked  State = "REVOKED"
	Retry    State = "RETRY"
	Rejected State = "REJECTED"
)

// Ready reports whether s is final (celery.states.READY_STATES).
func (s State) Ready() bool { return s == Success || s == Failure || s == Revoked }

// Errors of this package; match them with errors.Is.
var (
	// ErrTaskFailed: the task ended in FAILURE or REVOKED; the error is a
	// *TaskError with the exception Celery recorded.
	ErrTaskFailed = errors.New("celery: task failed")
	// ErrClosed: the client or worker was closed.
	ErrClosed = errors.New("celery: closed")
	// ErrNoBackend: results were asked of a client without a backend.
	ErrNoBackend = errors.New("celery: no result backend")
	// ErrMaxRetries: a task asked to be retried more than its MaxRetries
	// (Celery's MaxRetriesExceededError); a *TaskError of that type
	// matches it.
	ErrMaxRetries = errors.New("celery: max retries exceeded")
)

// TaskError is a task's exception as stored in the result backend: the
// exception's type, module and message, and the traceback text. A Go
// handler's error is stored as builtins.Exception unless it is (or wraps)
// a *TaskError, which is stored as it says.
type TaskError struct {
	// Type and Module name the Python exception class ("ValueError",
	// "builtins"). Default: "Exception", "builtins".
	Type, Module string
	// Message is the exception's message (its first argument).
	Message string
	// Traceback is the traceback text stored beside the exception.
	Traceback string
	// State is the state the task ended in (FAILURE, REVOKED, RETRY).
	State State
}

// Error returns "Type: Message".
func (e *TaskError) Error() string {
	t := e.Type
	if t == "" {
		t = "Exception"
	}
	return t + ": " + e.Message
}

// Is makes errors.Is(err, ErrTaskFailed) true for a failed or revoked task.
// errors.Is(err, ErrMaxRetries) is true for MaxRetriesExceededError.
func (e *TaskError) Is(target error) bool {
	switch target {
	case ErrTaskFailed:
		return e.State == Failure || e.State == Revoked
	case ErrMaxRetries:
		return e.Type == "MaxRetriesExceededError"
	}
	return false
}

// exception is Celery's JSON form of an exception (prepare_exception).
func (e *TaskError) exception() map[string]any {
	typ, mod := e.Type, e.Module
	if typ == "" {
		typ = "Exception"
	}
	if mod == "" {
		mod = "builtins"
	}
	return map[string]any{"exc_type": typ, "exc_message": []any{e.Message}, "exc_module": mod}
}

// errorFromResult reads a stored exception ({"exc_type", "exc_message",
// "exc_module"}) into a *TaskError.
func errorFromResult(state State, result any, traceback string) *TaskError {
	te := &TaskError{State: state, Traceback: traceback, Type: "Exception"}
	d, ok := result.(map[string]any)
	if !ok {
		te.Message = fmt.Sprint(result)
		return te
	}
	if s, ok := d["exc_type"].(string); ok {
		te.Type = s
	}
	te.Module, _ = d["exc_module"].(string)
	switch m := d["exc_message"].(type) {
	case string:
		te.Message = m
	case []any:
		parts := make([]string, len(m))
		for i, p := range m {
			parts[i] = fmt.Sprint(p)
		}
		te.Message = strings.Join(parts, ", ")
	}
	return te
}

// asTaskError turns a handler's error into the exception to store.
func asTaskError(err error) *TaskError {
	var te *TaskError
	if errors.As(err, &te) {
		c := *te
		return &c
	}
	return &TaskError{Type: "Exception", Module: "builtins", Message: err.Error()}
}

// RetryError asks the worker to run the task again (Celery's
// self.retry()): return one from a handler, made with [RetryAfter] or as
// a literal.
type RetryError struct {
	// Countdown delays the new attempt. Default: the task's
	// DefaultRetryDelay (Celery: 180 s).
	Countdown time.Duration
	// ETA, when not zero, is when the new attempt runs (wins over
	// Countdown).
	ETA time.Time
	// MaxRetries overrides the task's MaxRetries when not nil.
	MaxRetries *int
	// Err is the reason, stored with the RETRY state.
	Err error
}

// RetryAfter returns a *RetryError with a countdown and a reason.
func RetryAfter(countdown time.Duration, reason error) *RetryError {
	return &RetryError{Countdown: countdown, Err: reason}
}

// Error describes the retry.
func (e *RetryError) Error() string {
	if e.Err != nil {
		return "celery: retry: " + e.Err.Error()
	}
	return "celery: retry"
}

// Unwrap returns the reason.
func (e *RetryError) Unwrap() error { return e.Err }

// RejectError makes the worker reject the message (Celery's Reject): with
// Requeue the broker delivers it again, otherwise it is dropped or
// dead-lettered. Nothing is stored in the result backend.
type RejectError struct {
	Requeue bool
	Reason  string
}

// Error describes the rejection.
func (e *RejectError) Error() string {
	return fmt.Sprintf("celery: reject (requeue=%v): %s", e.Requeue, e.Reason)
}
