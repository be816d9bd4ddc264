package celery_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// Many waits share the Redis backend's one pub/sub connection: each gets
// its own task's result, two waits on one task both get it, a result
// stored before the wait is read from the key, and Forget deletes it.
func TestRedisBackendWaits(t *testing.T) {
	url := transporttest.BrokerURL(t, "KOMBU_TEST_REDIS_URL")
	b, err := celery.NewRedisBackend(url, celery.BackendOptions{Expires: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	early := messaging.NewUUID()
	if err := b.Store(ctx, &celery.Task{ID: early}, celery.Meta{TaskID: early, Status: celery.Success, Result: "early"}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = messaging.NewUUID()
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(ids)+2)
	wait := func(id string, want any) {
		defer wg.Done()
		m, err := b.Wait(ctx, id)
		if err != nil || m.Status != celery.Success || m.Result != want {
			errs <- fmt.Errorf("Wait(%s) = %+v, %v; want result %v", id, m, err, want)
		}
	}
	for i, id := range ids {
		wg.Add(1)
		go wait(id, int64(i))
	}
	wg.Add(2)
	go wait(ids[0], int64(0)) // a second wait on the same task
	go wait(early, "early")
	time.Sleep(100 * time.Millisecond) // most waits are subscribed; the others read the key
	for i, id := range ids {
		if err := b.Store(ctx, &celery.Task{ID: id}, celery.Meta{TaskID: id, Status: celery.Started}); err != nil {
			t.Fatal(err)
		}
		if err := b.Store(ctx, &celery.Task{ID: id}, celery.Meta{TaskID: id, Status: celery.Success,
			Result: i, DateDone: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A SUCCESS is not overwritten (a redelivered task ran again).
	b.Store(ctx, &celery.Task{ID: early}, celery.Meta{TaskID: early, Status: celery.Failure})
	if m, _ := b.Get(ctx, early); m.Status != celery.Success {
		t.Errorf("SUCCESS overwritten: %s", m.Status)
	}
	for _, id := range append(ids, early) {
		if err := b.Forget(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := b.Get(ctx, early); m.Status != celery.Pending {
		t.Errorf("after Forget: %s", m.Status)
	}
}
