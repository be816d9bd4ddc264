package messaging_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// workersN is the number of handler goroutines in a shutdownCase.
const workersN = 3

// shutdownCase is a ConsumerWorker consuming a fresh queue through a
// Workers pool whose handlers wait at a gate, so that messages are in
// flight when the worker is told to stop.
type shutdownCase struct {
	url     string
	q       messaging.Queue
	n       int
	workers *messaging.Workers
	gate    chan struct{}
	opened  sync.Once
	started chan int // each handler's message id, when it starts

	mu      sync.Mutex
	handled []*messaging.Message // the messages of the handlers that started
	acked   map[int]int          // id -> times acknowledged
	late    []error              // settlements that failed
	// unsettledAtEnd is how many messages handlers had started on were
	// not settled when consuming ended (OnConsumeEnd), before the
	// connection closed.
	unsettledAtEnd int
}

func newShutdownCase(t *testing.T, ctx context.Context, url string, n int) *shutdownCase {
	t.Helper()
	name := "graceful-" + messaging.NewUUID()[:8]
	sc := &shutdownCase{url: url, n: n, gate: make(chan struct{}), started: make(chan int, n), acked: map[int]int{},
		q:       messaging.NewQueue(name, messaging.NewExchange(name, messaging.Direct), name),
		workers: messaging.NewWorkers(messaging.WorkersOptions{N: workersN, Queue: workersN})}
	t.Cleanup(func() { sc.workers.Close() })
	t.Cleanup(sc.open) // before the pool's Close, which waits for the handlers
	conn, err := messaging.NewConnection(url, brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p, _ := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: sc.q.Exchange, RoutingKey: name})
	for i := range n {
		if err := p.Publish(ctx, i, messaging.PublishOptions{Declare: []messaging.Declaration{sc.q}}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { sc.deleteQueue() })
	return sc
}

// open lets the handlers go on.
func (sc *shutdownCase) open() { sc.opened.Do(func() { close(sc.gate) }) }

func (sc *shutdownCase) deleteQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := messaging.NewConnection(sc.url, brokerOptions())
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.DefaultChannel(ctx); err == nil {
		_, _ = ch.DeleteQueue(ctx, sc.q.Name, false, false)
		_ = ch.DeleteExchange(ctx, sc.q.Exchange.Name, false)
	}
}

func (sc *shutdownCase) handler(ctx context.Context, body any, m *messaging.Message) error {
	id := int(body.(int64))
	sc.mu.Lock()
	sc.handled = append(sc.handled, m)
	sc.mu.Unlock()
	sc.started <- id
	<-sc.gate
	err := m.Ack()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err != nil {
		sc.late = append(sc.late, err)
	} else {
		sc.acked[id]++
	}
	return err
}

func (sc *shutdownCase) worker(t *testing.T, drainTimeout time.Duration, consumers chan<- *messaging.Consumer) *messaging.ConsumerWorker {
	t.Helper()
	tmpl, err := messaging.NewConnection(sc.url, brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmpl.Close() })
	w, err := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
		DrainTimeout: drainTimeout,
		Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
			return []messaging.ConsumerOptions{{Queues: []messaging.Queue{sc.q}, PrefetchCount: sc.workers.Capacity(),
				Callbacks: []messaging.Callback{sc.workers.Callback(sc.handler)}}}, nil
		},
		OnConsumeReady: func(_ *messaging.Connection, cs []*messaging.Consumer) { consumers <- cs[0] },
		OnConsumeEnd: func(*messaging.Connection) {
			sc.mu.Lock()
			defer sc.mu.Unlock()
			for _, m := range sc.handled {
				if !m.Acknowledged() {
					sc.unsettledAtEnd++
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// awaitBusy waits until every worker runs a handler; as many messages wait
// in the pool's queue (the consumer's prefetch is the pool's capacity).
func (sc *shutdownCase) awaitBusy(t *testing.T, ctx context.Context) {
	t.Helper()
	for range workersN {
		select {
		case <-sc.started:
		case <-ctx.Done():
			t.Fatal("handlers did not start")
		}
	}
}

// account takes what is left in the queue, through a new connection, until
// every message is accounted for as acknowledged once by the worker or
// found in the queue, and fails on a message lost or handled twice.
func (sc *shutdownCase) account(t *testing.T, ctx context.Context) (acked, left int) {
	t.Helper()
	conn, err := messaging.NewConnection(sc.url, brokerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	seen := map[int]int{}
	for id, k := range sc.acked {
		seen[id] += k
	}
	for len(seen) < sc.n {
		m, err := sc.q.Get(ctx, ch, messaging.GetOptions{})
		if errors.Is(err, messaging.ErrEmpty) {
			// AMQP requeues a closed channel's messages asynchronously.
			if ctx.Err() != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.Decode()
		if err != nil {
			t.Fatal(err)
		}
		seen[int(body.(int64))]++
		left++
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	for id := range sc.n {
		if seen[id] != 1 {
			t.Errorf("message %d accounted for %d times (acked by the worker %d times)", id, seen[id], sc.acked[id])
		}
	}
	return len(sc.acked), left
}

// A ConsumerWorker told to stop while messages are in flight in a Workers
// pool waits for them to be settled, then closes: every published message
// is either acknowledged once or still in the queue, on every transport.
func TestConsumerWorkerGracefulShutdown(t *testing.T) {
	urls := map[string]string{"memory": "memory://graceful-" + messaging.NewUUID()[:8]}
	for _, env := range []string{"KOMBU_TEST_REDIS_URL", "KOMBU_TEST_AMQP_URL"} {
		urls[env] = env
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			if name != "memory" {
				url = brokerURL(t, url)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const n = 40
			sc := newShutdownCase(t, ctx, url, n)
			consumers := make(chan *messaging.Consumer, 1)
			w := sc.worker(t, 20*time.Second, consumers) // a hang guard: the drain completes
			runCtx, terminate := context.WithCancel(ctx) // what signal.NotifyContext gives on SIGTERM
			ran := make(chan error, 1)
			go func() { ran <- w.Run(runCtx) }()
			cons := <-consumers
			sc.awaitBusy(t, ctx)
			terminate()
			<-cons.Done() // the worker has stopped the deliveries and is draining
			// Let the handlers finish a little later: a worker that did
			// not wait for them would end consuming first. (The delay
			// makes that likely; the test cannot fail without it.)
			time.AfterFunc(20*time.Millisecond, sc.open)
			if err := <-ran; err != nil {
				t.Fatalf("Run = %v", err)
			}
			if sc.unsettledAtEnd != 0 {
				t.Errorf("consuming ended with %d handlers unsettled", sc.unsettledAtEnd)
			}
			// The handlers running at the signal finished their work; so did
			// those waiting in the pool's queue, if they were delivered
			// before the consumer was cancelled (not all are, on AMQP).
			acked, left := sc.account(t, ctx)
			if acked < workersN || acked+left != n || len(sc.late) != 0 {
				t.Errorf("acked %d (want at least %d), left %d, failed settlements %v", acked, workersN, left, sc.late)
			}
		})
	}
}

// When the handlers outlive DrainTimeout, Run reports the deadline and the
// unsettled messages go back to the queue; Close does not wait at all; and
// Drain bounds the wait with its context.
func TestConsumerWorkerShutdownBounds(t *testing.T) {
	for _, how := range []string{"DrainTimeout", "Close", "Drain"} {
		t.Run(how, func(t *testing.T) {
			ctx := testCtx(t)
			sc := newShutdownCase(t, ctx, "memory://bounds-"+messaging.NewUUID()[:8], 10)
			consumers := make(chan *messaging.Consumer, 1)
			w := sc.worker(t, 50*time.Millisecond, consumers) // the deadline under test
			runCtx, terminate := context.WithCancel(ctx)
			defer terminate()
			ran := make(chan error, 1)
			go func() { ran <- w.Run(runCtx) }()
			<-consumers
			sc.awaitBusy(t, ctx)
			var runErr error
			switch how {
			case "DrainTimeout":
				terminate()
				runErr = <-ran
				if !errors.Is(runErr, context.DeadlineExceeded) {
					t.Errorf("Run = %v, want the drain's deadline", runErr)
				}
			case "Close":
				if err := w.Close(); err != nil {
					t.Error(err)
				}
				if runErr = <-ran; runErr != nil {
					t.Errorf("Run after Close = %v", runErr)
				}
			case "Drain":
				dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
				if err := w.Drain(dctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Drain = %v, want its deadline", err)
				}
				if runErr = <-ran; !errors.Is(runErr, context.DeadlineExceeded) {
					t.Errorf("Run = %v, want the drain's deadline", runErr)
				}
			}
			sc.open()
			// The running handlers' late settlements fail: the messages went
			// back (a MessageStateError, or a closed channel after Close).
			// After a drain the pool skips the queued ones, given back
			// already; after Close some may run, and fail the same way.
			sc.workers.Close()
			acked, left := sc.account(t, ctx)
			maxLate := workersN
			if how == "Close" {
				maxLate = sc.workers.Capacity()
			}
			if acked != 0 || left != sc.n || len(sc.late) < workersN || len(sc.late) > maxLate {
				t.Errorf("acked %d, left %d, failed late settlements %d (want 0, %d, %d to %d)",
					acked, left, len(sc.late), sc.n, workersN, maxLate)
			}
			for _, err := range sc.late {
				if !errors.Is(err, messaging.ErrMessageState) && !errors.Is(err, transport.ErrClosed) {
					t.Errorf("late settlement: %v", err)
				}
			}
		})
	}
}
