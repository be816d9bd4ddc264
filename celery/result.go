package celery

import (
	"context"
	"encoding/json"
	"fmt"
)

// AsyncResult is the handle of a sent task (Celery's AsyncResult). Its
// methods ask the client's result backend; they are safe for concurrent
// use.
type AsyncResult struct {
	// ID is the task id.
	ID      string
	backend Backend
}

// NewAsyncResult returns the handle of task id on a backend (Celery's
// AsyncResult(id, backend=...)).
func NewAsyncResult(id string, b Backend) *AsyncResult { return &AsyncResult{ID: id, backend: b} }

// Get waits until the task is ready and returns its result. A task that
// failed or was revoked returns a *TaskError (errors.Is ErrTaskFailed)
// with the exception and traceback Celery recorded. ctx bounds the wait
// (Celery's timeout=).
func (r *AsyncResult) Get(ctx context.Context) (any, error) {
	m, err := r.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.Err(); err != nil {
		return nil, err
	}
	return m.Result, nil
}

// GetInto is Get, then the result converted into dst (through JSON).
func (r *AsyncResult) GetInto(ctx context.Context, dst any) error {
	v, err := r.Get(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("celery: result: %w", err)
	}
	return json.Unmarshal(b, dst)
}

// Wait waits for a ready state and returns the whole meta (status, result,
// traceback, date done).
func (r *AsyncResult) Wait(ctx context.Context) (Meta, error) {
	if r.backend == nil {
		return Meta{}, ErrNoBackend
	}
	return r.backend.Wait(ctx, r.ID)
}

// Meta returns the task's current meta without waiting.
func (r *AsyncResult) Meta(ctx context.Context) (Meta, error) {
	if r.backend == nil {
		return Meta{}, ErrNoBackend
	}
	return r.backend.Get(ctx, r.ID)
}

// State returns the task's current state (PENDING when unknown).
func (r *AsyncResult) State(ctx context.Context) (State, error) {
	m, err := r.Meta(ctx)
	return m.Status, err
}

// Ready reports whether the task is in a ready state.
func (r *AsyncResult) Ready(ctx context.Context) (bool, error) {
	s, err := r.State(ctx)
	return s.Ready(), err
}

// Forget removes the result from the backend.
func (r *AsyncResult) Forget(ctx context.Context) error {
	if r.backend == nil {
		return ErrNoBackend
	}
	return r.backend.Forget(ctx, r.ID)
}
