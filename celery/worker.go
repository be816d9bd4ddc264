package celery

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
)

// Handler runs a task: the positional and keyword arguments as decoded
// from the message (JSON numbers are int64 or float64). The result must be
// serializable by the result backend (JSON). Return a *RetryError to retry
// the task, a *RejectError to reject its message, any other error to fail
// it. ctx ends at the soft time limit, at the hard one, or when the worker
// closes; TaskFromContext gives the request.
type Handler func(ctx context.Context, args []any, kwargs map[string]any) (any, error)

// TaskOptions are a registered task's settings (the @app.task options).
type TaskOptions struct {
	// MaxRetries bounds RetryError retries (Celery's max_retries).
	// Default (0): 3. Negative: no limit.
	MaxRetries int
	// DefaultRetryDelay is the countdown of a RetryError without one.
	// Default: 180 s.
	DefaultRetryDelay time.Duration
	// AcksLate acknowledges the message after the task ran instead of
	// before (acks_late); the worker's AcksLate also turns it on.
	AcksLate bool
	// TimeLimit and SoftTimeLimit override the worker's.
	TimeLimit, SoftTimeLimit time.Duration
	// IgnoreResult stores no result.
	IgnoreResult bool
}

type taskEntry struct {
	h    Handler
	opts TaskOptions
}

type ctxKey struct{}

// TaskFromContext returns the request a handler is running.
func TaskFromContext(ctx context.Context) (*Task, bool) {
	t, ok := ctx.Value(ctxKey{}).(*Task)
	return t, ok
}

// WorkerOptions configure a [Worker].
type WorkerOptions struct {
	// Broker is the broker URL, used when Connection is nil.
	Broker string
	// Connection, when set, is the template of the worker's connections
	// (it is cloned, not used or closed).
	Connection *messaging.Connection
	// Backend is the result backend URL ("redis://...", "rpc://"); empty
	// stores no results. ResultBackend, when set, is used instead (not
	// closed by the worker).
	Backend        string
	ResultBackend  Backend
	BackendOptions BackendOptions
	// Queues to consume, each bound to a direct exchange of its name.
	// Default: ["celery"].
	Queues []string
	// Concurrency is the number of handler goroutines. Default:
	// GOMAXPROCS.
	Concurrency int
	// PrefetchMultiplier: the prefetch count is Concurrency times this
	// (worker_prefetch_multiplier). Default: 4.
	PrefetchMultiplier int
	// MaxHeldETA bounds the tasks with a future ETA held on hub timers
	// (each raises the prefetch count by one while held, as Celery's
	// QoS increment). Past it, such tasks go back to the broker. Default:
	// 1000.
	MaxHeldETA int
	// AcksLate acknowledges every task after it ran (task_acks_late).
	AcksLate bool
	// TimeLimit and SoftTimeLimit are the default limits of tasks
	// (task_time_limit, task_soft_time_limit). 0: none.
	TimeLimit, SoftTimeLimit time.Duration
	// Hostname is the node name. Default: "celery@<hostname>".
	Hostname string
	// SendEvents publishes task events (-E / worker_send_task_events);
	// worker events (online, heartbeat, offline) are sent when
	// SendEvents or RemoteControl is set, as Celery's gossip needs them.
	SendEvents bool
	// RemoteControl consumes the node's pidbox queue and answers ping,
	// active, stats, registered and shutdown.
	RemoteControl bool
	// HeartbeatInterval is the period of worker-heartbeat. Default: 2 s.
	HeartbeatInterval time.Duration
	// Accept lists the serializers taken (accept_content). Default: json,
	// msgpack, yaml.
	Accept []string
	// DrainTimeout bounds the graceful end of Run. Default: 10 s.
	DrainTimeout time.Duration
	// OnDecodeError receives messages that are not Celery tasks (bad
	// envelope, body or headers) with an error matching ErrMalformed or
	// messaging.ErrDecode; it settles them. Default: log, count
	// (Worker.DecodeErrors) and reject.
	OnDecodeError func(m *messaging.Message, err error)
	// Logger receives diagnostics. Default: slog.Default().
	Logger *slog.Logger
}

// Worker consumes Celery task messages and runs registered Go handlers on
// a bounded pool (a Celery worker). Run blocks; Register before Run.
type Worker struct {
	opts    WorkerOptions
	log     *slog.Logger
	conn    *messaging.Connection // template (cloned by the ConsumerWorker)
	pubConn *messaging.Connection // results, retries, events, replies
	ownConn bool
	backend Backend
	ownBack bool
	pub     *messaging.Producer
	started time.Time

	mu       sync.Mutex
	tasks    map[string]taskEntry
	active   map[string]activeTask
	running  bool
	stopFn   context.CancelFunc
	consumer *messaging.Consumer // the task consumer on the current connection
	h        *hub.Hub

	pool     *messaging.Workers
	dispatch messaging.Callback
	prefetch int
	// held counts ETA tasks on hub timers (hub goroutine only writes it
	// through atomics so that qosLoop can read it).
	held      atomic.Int64
	qosKick   chan struct{}
	processed sync.Map // task name -> *atomic.Int64
	total     atomic.Int64
	decodeErr atomic.Uint64
	strays    sync.WaitGroup // handlers past their hard time limit
	ev        *events
	ctl       chan controlRequest
	// etas holds the ETA tasks waiting on hub timers (hub goroutine only).
	etas map[*Task]etaHold
}

// etaHold is an ETA task on a hub timer.
type etaHold struct {
	timer interface{ Cancel() }
	m     *messaging.Message
}

type activeTask struct {
	t       *Task
	started time.Time
}

// NewWorker returns a worker. It does no I/O.
func NewWorker(opts WorkerOptions) (*Worker, error) {
	if len(opts.Queues) == 0 {
		opts.Queues = []string{DefaultQueue}
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	if opts.PrefetchMultiplier <= 0 {
		opts.PrefetchMultiplier = 4
	}
	if opts.MaxHeldETA <= 0 {
		opts.MaxHeldETA = 1000
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.Accept == nil {
		opts.Accept = []string{"json", "msgpack", "yaml"}
	}
	if opts.Hostname == "" {
		h, _ := os.Hostname()
		opts.Hostname = "celery@" + h
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w := &Worker{opts: opts, log: opts.Logger, conn: opts.Connection, backend: opts.ResultBackend,
		tasks: map[string]taskEntry{}, active: map[string]activeTask{}, qosKick: make(chan struct{}, 1),
		ctl: make(chan controlRequest, controlQueueCap), etas: map[*Task]etaHold{}}
	if w.conn == nil {
		c, err := messaging.NewConnection(opts.Broker, messaging.Options{Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		w.conn, w.ownConn = c, true
	}
	w.pubConn = w.conn.Clone()
	var err error
	if w.pub, err = messaging.NewProducer(w.pubConn, messaging.ProducerOptions{Serializer: "json"}); err != nil {
		w.Close()
		return nil, err
	}
	if w.backend == nil && opts.Backend != "" {
		if strings.HasPrefix(opts.Backend, "rpc://") {
			w.backend, err = NewRPCBackend(w.pubConn, opts.BackendOptions)
		} else {
			w.backend, err = OpenBackend(opts.Backend, "", opts.BackendOptions)
		}
		if err != nil {
			w.Close()
			return nil, err
		}
		w.ownBack = true
	}
	w.ev = newEvents(w)
	return w, nil
}

// Register adds a task handler under name. Register before Run; a second
// registration of a name replaces the first.
func (w *Worker) Register(name string, h Handler, opts TaskOptions) {
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 3
	}
	if opts.DefaultRetryDelay <= 0 {
		opts.DefaultRetryDelay = 180 * time.Second
	}
	w.mu.Lock()
	w.tasks[name] = taskEntry{h: h, opts: opts}
	w.mu.Unlock()
}

// Hostname returns the node name.
func (w *Worker) Hostname() string { return w.opts.Hostname }

// DecodeErrors counts the messages that were not Celery tasks.
func (w *Worker) DecodeErrors() uint64 { return w.decodeErr.Load() }

// Stop makes Run end gracefully (remote control's shutdown calls it).
func (w *Worker) Stop() {
	w.mu.Lock()
	if w.stopFn != nil {
		w.stopFn()
	}
	w.mu.Unlock()
}

// Run consumes and runs tasks until ctx ends or Stop is called, then shuts
// down gracefully: no new messages, the tasks running and queued are
// finished within DrainTimeout (ETA tasks not yet due go back to the
// broker), and worker-offline is sent. It reconnects when the broker
// connection breaks.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("celery: worker already running")
	}
	w.running = true
	ctx, cancel := context.WithCancel(ctx)
	w.stopFn = cancel
	w.mu.Unlock()
	defer cancel()
	w.started = time.Now()
	w.prefetch = w.opts.Concurrency * w.opts.PrefetchMultiplier
	w.pool = messaging.NewWorkers(messaging.WorkersOptions{N: w.opts.Concurrency,
		Queue: w.prefetch + w.opts.MaxHeldETA, Logger: w.log})
	w.dispatch = w.pool.Callback(w.execute)
	cw, err := messaging.NewConsumerWorker(w.conn, messaging.ConsumerWorkerOptions{
		Consumers:      w.consumers,
		OnConsumeReady: w.ready,
		DrainTimeout:   w.opts.DrainTimeout,
		Logger:         w.log,
	})
	if err != nil {
		w.pool.Close()
		return err
	}
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { // joined below
		defer bg.Done()
		w.qosLoop(ctx)
	}()
	if w.eventsOn() {
		bg.Add(1)
		go func() { // joined below
			defer bg.Done()
			w.ev.heartbeats(ctx)
		}()
	}
	if w.opts.RemoteControl {
		bg.Add(1)
		go func() { // joined below
			defer bg.Done()
			w.controlLoop(ctx)
		}()
	}
	err = cw.Run(ctx)
	cancel()
	bg.Wait()
	dctx, dcancel := context.WithTimeout(context.Background(), w.drainTimeout())
	w.pool.Drain(dctx)
	dcancel()
	w.strays.Wait()
	if w.eventsOn() {
		w.ev.send(context.Background(), "worker-offline", w.ev.workerFields())
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (w *Worker) drainTimeout() time.Duration {
	if w.opts.DrainTimeout > 0 {
		return w.opts.DrainTimeout
	}
	return messaging.DefaultDrainTimeout
}

func (w *Worker) eventsOn() bool { return w.opts.SendEvents || w.opts.RemoteControl }

// consumers returns the task consumer (and the pidbox consumer) for a new
// connection.
func (w *Worker) consumers(conn *messaging.Connection) ([]messaging.ConsumerOptions, error) {
	// The hub the deliveries will run on, for ETA timers, known before the
	// first delivery.
	h, err := conn.Hub()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.h = h
	w.mu.Unlock()
	qs := make([]messaging.Queue, len(w.opts.Queues))
	for i, name := range w.opts.Queues {
		qs[i] = messaging.NewQueue(name, messaging.NewExchange(name, messaging.Direct), name)
	}
	cs := []messaging.ConsumerOptions{{Queues: qs, PrefetchCount: w.prefetch + int(w.held.Load()),
		Accept: w.opts.Accept, Callbacks: []messaging.Callback{w.receive}, OnDecodeError: w.decodeError,
		TagPrefix: "celery-go-"}}
	if w.opts.RemoteControl {
		cs = append(cs, w.controlConsumer())
	}
	return cs, nil
}

// ready records the task consumer of a new connection (for prefetch
// changes).
func (w *Worker) ready(_ *messaging.Connection, cs []*messaging.Consumer) {
	w.mu.Lock()
	w.consumer = cs[0]
	w.mu.Unlock()
}

func (w *Worker) decodeError(m *messaging.Message, err error) {
	w.decodeErr.Add(1)
	if w.opts.OnDecodeError != nil {
		w.opts.OnDecodeError(m, err)
		return
	}
	w.log.Error("celery: not a task message, rejecting", "routing_key", m.DeliveryInfo.RoutingKey,
		"delivery_tag", m.DeliveryTag(), "err", err)
	m.RejectLogError(w.log)
}

// receive runs on the hub for each task message.
func (w *Worker) receive(body any, m *messaging.Message) {
	t, err := decodeTask(m, body)
	if err != nil {
		w.decodeError(m, err)
		return
	}
	t.Hostname = w.opts.Hostname
	w.mu.Lock()
	_, known := w.tasks[t.Name]
	h := w.h
	w.mu.Unlock()
	if !known {
		w.log.Error("celery: received unregistered task, rejecting", "task", t.Name, "id", t.ID)
		m.RejectLogError(w.log)
		return
	}
	argsrepr, kwargsrepr := reprArgs(t.Args, t.Kwargs)
	if s, ok := t.Headers["argsrepr"].(string); ok {
		argsrepr = s
	}
	if s, ok := t.Headers["kwargsrepr"].(string); ok {
		kwargsrepr = s
	}
	w.ev.task(t, "task-received", map[string]any{"name": t.Name, "args": argsrepr,
		"kwargs": kwargsrepr, "retries": t.Retries, "eta": timeOrNil(t.ETA),
		"expires": timeOrNil(t.Expires), "root_id": t.RootID, "parent_id": nilIfEmpty(t.ParentID)})
	if !t.ETA.IsZero() && time.Until(t.ETA) > 0 {
		if w.held.Load() >= int64(w.opts.MaxHeldETA) {
			w.log.Warn("celery: too many ETA tasks held, requeueing", "id", t.ID)
			if err := m.Requeue(); err != nil {
				w.log.Error("celery: requeue", "id", t.ID, "err", err)
			}
			return
		}
		w.held.Add(1)
		w.kickQoS()
		w.etas[t] = etaHold{m: m, timer: h.CallAt(t.ETA, func() {
			delete(w.etas, t)
			w.held.Add(-1)
			w.kickQoS()
			w.dispatch(t, m)
		})}
		return
	}
	w.dispatch(t, m)
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// kickQoS asks qosLoop to apply the prefetch count (never blocks).
func (w *Worker) kickQoS() {
	select {
	case w.qosKick <- struct{}{}:
	default:
	}
}

// qosLoop applies prefetch = base + held ETA tasks off the hub (Consumer.Qos
// waits for the broker), coalescing changes (Celery's
// QoS.increment_eventually / update).
func (w *Worker) qosLoop(ctx context.Context) {
	applied := w.prefetch
	for {
		select {
		case <-ctx.Done():
			w.releaseETAs()
			return
		case <-w.qosKick:
		}
		want := w.prefetch + int(w.held.Load())
		w.mu.Lock()
		c := w.consumer
		w.mu.Unlock()
		if c == nil || want == applied {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.Qos(qctx, want); err != nil {
			w.log.Warn("celery: cannot change prefetch", "prefetch", want, "err", err)
		} else {
			applied = want
		}
		cancel()
	}
}

// releaseETAs gives the ETA tasks still on hub timers back to the broker
// at shutdown, so that the drain does not wait for them.
func (w *Worker) releaseETAs() {
	w.mu.Lock()
	h := w.h
	w.mu.Unlock()
	if h == nil {
		return
	}
	h.Post(func() {
		for t, e := range w.etas {
			e.timer.Cancel()
			delete(w.etas, t)
			w.held.Add(-1)
			if err := e.m.Requeue(); err != nil {
				w.log.Warn("celery: cannot give back an ETA task", "id", t.ID, "err", err)
			}
		}
	})
}

// Close releases what NewWorker opened (connections, the backend it
// opened). Call it after Run returned; Run closes what it started itself.
func (w *Worker) Close() error {
	var errs []error
	if w.ownBack && w.backend != nil {
		errs = append(errs, w.backend.Close())
	}
	if w.pubConn != nil {
		errs = append(errs, w.pubConn.Close())
	}
	if w.ownConn && w.conn != nil {
		errs = append(errs, w.conn.Close())
	}
	return errors.Join(errs...)
}
