package messaging_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func TestConnectionPool(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	tmpl, _ := newFake(t, "fake://a", b, nil)
	pool := messaging.NewConnectionPool(tmpl, messaging.PoolOptions{Limit: 2})
	defer pool.Close()
	c1, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := pool.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	if c1 == c2 || c1 == tmpl {
		t.Error("pool items are not distinct clones")
	}
	_, err = pool.TryAcquire()
	var le *messaging.LimitExceededError
	if !errors.Is(err, messaging.ErrLimitExceeded) || !errors.As(err, &le) || le.Limit != 2 || le.Resource != "connection" {
		t.Fatalf("full pool: %v", err)
	}
	// Blocking acquire waits for a release, or for ctx.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := pool.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked acquire: %v", err)
	}
	got := make(chan *messaging.Connection)
	go func() {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	if err := pool.Release(c1); err != nil {
		t.Fatal(err)
	}
	if c3 := <-got; c3 != c1 {
		t.Error("the released connection was not reused")
	}
	if err := pool.Release(c1); err != nil {
		t.Fatal(err)
	}
	if err := pool.Release(c1); err == nil {
		t.Error("double release accepted")
	}
	// Replace closes and frees the slot.
	if _, err := c2.DefaultChannel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.Replace(c2); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.DefaultChannel(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("replaced connection still open: %v", err)
	}
	if inUse, idle := pool.Stats(); inUse != 0 || idle != 1 {
		t.Errorf("stats %d in use, %d idle", inUse, idle)
	}
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Acquire(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestConnectionPoolUnlimited(t *testing.T) {
	ctx := testCtx(t)
	tmpl, _ := newFake(t, "fake://a", &fakeBroker{}, nil)
	pool := messaging.NewConnectionPool(tmpl, messaging.PoolOptions{Limit: -1})
	defer pool.Close()
	var conns []*messaging.Connection
	for i := 0; i < 20; i++ {
		c, err := pool.TryAcquire()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if pool.Limit() != 0 {
		t.Errorf("limit %d", pool.Limit())
	}
	// Without a limit, release closes.
	if err := pool.Release(conns[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[0].DefaultChannel(ctx); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("released connection: %v", err)
	}
	for _, c := range conns[1:] {
		pool.Release(c)
	}
	if messaging.NewConnectionPool(tmpl, messaging.PoolOptions{}).Limit() != messaging.DefaultPoolLimit {
		t.Error("default limit")
	}
}

func TestProducerPool(t *testing.T) {
	ctx := testCtx(t)
	b := &fakeBroker{}
	tmpl, _ := newFake(t, "fake://a", b, nil)
	conns := messaging.NewConnectionPool(tmpl, messaging.PoolOptions{Limit: 2})
	defer conns.Close()
	pp := messaging.NewProducerPool(conns, messaging.ProducerPoolOptions{Limit: 3,
		Producer: messaging.ProducerOptions{RoutingKey: "q"}})
	defer pp.Close()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := pp.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer pp.Release(p)
			if err := p.Publish(ctx, "x", messaging.PublishOptions{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b.mu.Lock()
	n := len(b.published)
	b.mu.Unlock()
	if n != 8 {
		t.Errorf("%d published", n)
	}
	if inUse, _ := conns.Stats(); inUse != 0 {
		t.Errorf("%d connections still in use", inUse)
	}
	// The producer pool's own limit.
	p1, _ := pp.Acquire(ctx)
	p2, _ := pp.Acquire(ctx)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := pp.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a third producer with 2 connections: %v", err)
	}
	if err := pp.Replace(p1); err != nil {
		t.Fatal(err)
	}
	if err := pp.Release(p2); err != nil {
		t.Fatal(err)
	}
	if err := pp.Release(p2); err == nil {
		t.Error("double release accepted")
	}
}

func TestChannelPool(t *testing.T) {
	ctx := testCtx(t)
	c, _ := newFake(t, "fake://a", &fakeBroker{}, nil)
	cp := messaging.NewChannelPool(c, messaging.PoolOptions{Limit: 1})
	defer cp.Close()
	ch, err := cp.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.TryAcquire(ctx); !errors.Is(err, messaging.ErrLimitExceeded) {
		t.Errorf("full: %v", err)
	}
	cp.Release(ch)
	ch2, err := cp.Acquire(ctx)
	if err != nil || ch2 != ch {
		t.Errorf("not reused: %v", err)
	}
	cp.Release(ch2)
}
