package filesystem

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// Transport is Kombu's filesystem transport. It is safe for concurrent use.
type Transport struct {
	o        Options
	chOpts   channel.Options
	declared *queueSet
}

var _ transport.Transport = (*Transport)(nil)

// processState is Kombu's Transport.global_state for this transport: the
// exchanges and bindings declared in this process, shared by every
// filesystem connection of the process, whatever its folders (Kombu 5.2.4
// writes no binding to disk). declaredQueues is the same for queue
// declarations.
var (
	processState   = channel.NewState()
	declaredQueues = &queueSet{m: make(map[string]bool)}
)

// New returns a transport for a "filesystem://" URL and its transport
// options (see ParseConfig).
func New(cfg transport.Config) (*Transport, error) {
	o, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewWithOptions(o)
}

// NewWithOptions returns a transport with the given options. The folders
// are checked at Dial.
func NewWithOptions(o Options) (*Transport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	return &Transport{
		o: o,
		chOpts: channel.Options{
			State:            processState,
			DeadLetterQueue:  o.DeadLetterQueue,
			NoRestoreOnClose: o.NoRestoreOnClose,
			Logger:           o.Logger,
		},
		declared: declaredQueues,
	}, nil
}

// Options returns the transport's options, folders made absolute.
func (t *Transport) Options() Options { return t.o }

// Info describes the filesystem transport.
func (t *Transport) Info() transport.Info {
	return transport.Info{
		Driver:        "filesystem",
		ExchangeTypes: []string{transport.Direct, transport.Topic, transport.Fanout, transport.Headers},
		Fanout:        "broadcast",
		// Publish returns once the file has its final name.
		Confirms: true,
	}
}

// Dial checks the folders, registers the connection (its lock file and
// claim folder), recovers the claims of dead connections, and watches the
// in folder on h.
func (t *Transport) Dial(ctx context.Context, h *hub.Hub) (transport.Conn, error) {
	if h == nil {
		return nil, errors.New("filesystem: dial with a nil hub")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filesystem: dial: %w", err)
	}
	f, err := openFolders(t.o)
	if err != nil {
		return nil, err
	}
	if n, err := f.recoverDead(); err != nil {
		t.o.Logger.Warn("filesystem: recovery of dead connections failed", "err", err)
	} else if n > 0 {
		t.o.Logger.Info("filesystem: recovered messages of dead connections", "messages", n)
	}
	c := &Conn{t: t, h: h, f: f, ex: newExecutor(), chans: channel.NewSet[*Channel]()}
	if err := h.Call(ctx, c.start); err != nil {
		c.ex.stop()
		f.release()
		return nil, fmt.Errorf("filesystem: dial: %w", err)
	}
	return c, nil
}

// Conn is one filesystem connection: its registration in the folder, one
// executor goroutine for the file work of all its channels, and one
// watch on the in folder.
type Conn struct {
	t     *Transport
	h     *hub.Hub
	f     *folders
	ex    *executor
	chans *channel.Set[*Channel]

	// Hub-owned.
	w          *watcher
	watching   bool // w is registered in the hub
	poll       canceler
	recoverT   canceler
	stores     []*store
	recovering bool
	stopped    bool
}

var _ transport.Conn = (*Conn)(nil)

// start runs on the hub: the watch, the polling fallback, the recovery
// timer.
func (c *Conn) start() {
	if c.t.o.Watch {
		c.watch()
	}
	if !c.watching {
		c.startPolling()
	}
	c.recoverT = c.h.CallRepeatedly(c.t.o.RecoverInterval, c.recoverPass)
}

// watch sets up the notification of the in folder; on failure the
// connection polls.
func (c *Conn) watch() {
	w, err := newWatcher(c.f.in)
	if err != nil {
		c.t.o.Logger.Warn("filesystem: cannot watch the folder; polling instead", "folder", c.f.in, "err", err)
		return
	}
	if err := c.h.AddReader(w.FD(), c.onEvents); err != nil {
		w.close()
		c.t.o.Logger.Warn("filesystem: cannot watch the folder; polling instead", "folder", c.f.in, "err", err)
		return
	}
	c.w, c.watching = w, true
	if c.poll != nil {
		c.poll.Cancel()
		c.poll = nil
	}
}

func (c *Conn) startPolling() {
	if c.poll == nil {
		c.poll = c.h.CallRepeatedly(c.t.o.PollingInterval, c.onPoll)
	}
}

// onPoll is the polling fallback (Kombu's polling_interval): every store
// looks for files; a lost watch is set up again.
func (c *Conn) onPoll() {
	if c.t.o.Watch && !c.watching {
		c.watch()
	}
	c.kickAll("")
}

// onEvents drains the watch and wakes the stores consuming the queues
// that got files.
func (c *Conn) onEvents(fd int, ev hub.Event) {
	if !c.watching {
		return
	}
	lost, err := c.w.drain(c.kickAll)
	if err == nil && !lost {
		return
	}
	c.t.o.Logger.Warn("filesystem: the folder watch is lost; polling until it can be set up again",
		"folder", c.f.in, "err", err)
	c.unwatch()
	c.startPolling()
	c.kickAll("")
}

func (c *Conn) unwatch() {
	if !c.watching {
		return
	}
	c.h.Remove(c.w.FD())
	c.w.close()
	c.w, c.watching = nil, false
}

// kickAll wakes the stores consuming queue ("": every store).
func (c *Conn) kickAll(queue string) {
	for _, s := range c.stores {
		if queue == "" || s.consumes(queue) {
			s.kick()
		}
	}
}

// recoverPass looks for dead connections' claims on the executor.
func (c *Conn) recoverPass() {
	if c.recovering || c.stopped {
		return
	}
	c.recovering = true
	f, log, h := c.f, c.t.o.Logger, c.h
	ok := c.ex.submit(func() {
		n, err := f.recoverDead()
		if err != nil {
			log.Warn("filesystem: recovery of dead connections failed", "err", err)
		}
		h.Post(func() {
			c.recovering = false
			if n > 0 && !c.watching {
				c.kickAll("")
			}
		})
	})
	if !ok {
		c.recovering = false
	}
}

func (c *Conn) removeStore(s *store) {
	if i := indexOf(c.stores, s); i >= 0 {
		c.stores = append(c.stores[:i], c.stores[i+1:]...)
	}
}

func indexOf(list []*store, s *store) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// Channel opens a channel. Safe for concurrent use.
func (c *Conn) Channel(ctx context.Context) (transport.Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filesystem: channel: %w", err)
	}
	st := newStore(c)
	vc := channel.New(c.h, st, c.t.chOpts)
	st.ch = vc
	ch := &Channel{Handle: vc.Handle(), ch: vc, conn: c}
	// Registered for the folder's wake-ups on the hub; posted under the
	// set's lock, so before any Close of the connection.
	add := func() { c.h.Post(func() { c.stores = append(c.stores, st) }) }
	if err := c.chans.Add(ch, add); err != nil {
		vc.Close()
		return nil, fmt.Errorf("filesystem: %w", err)
	}
	return ch, nil
}

// Done is closed when the connection is closed.
func (c *Conn) Done() <-chan struct{} { return c.chans.Done() }

// Err returns nil while the connection is open and transport.ErrClosed
// after Close.
func (c *Conn) Err() error { return c.chans.Err() }

// Close closes every channel (their unacknowledged messages go back to
// their queues), stops the watch, the timers and the executor, and ends
// the connection's registration in the folder. Idempotent. From a hub
// callback it returns an error matching hub.ErrInCallback.
func (c *Conn) Close() error {
	if hub.InCallback() {
		return fmt.Errorf("filesystem: close: %w", hub.ErrInCallback)
	}
	chans, first := c.chans.Close()
	if !first {
		<-c.chans.Done()
		return nil
	}
	var errs []error
	for _, ch := range chans {
		errs = append(errs, ch.ch.Close())
	}
	stop := func() {
		c.stopped = true
		c.unwatch()
		if c.poll != nil {
			c.poll.Cancel()
		}
		if c.recoverT != nil {
			c.recoverT.Cancel()
		}
	}
	if err := c.h.Call(context.Background(), stop); err != nil {
		if !errors.Is(err, hub.ErrClosed) {
			errs = append(errs, fmt.Errorf("filesystem: close: %w", err))
		}
		<-c.h.Done()
		stop()
	}
	c.ex.stop()
	errs = append(errs, c.f.release())
	c.chans.Finish()
	return errors.Join(errs...)
}

// canceler is a hub timer (hub.CallLater, CallRepeatedly), named by what
// this package does with it.
type canceler interface{ Cancel() }

// queueSet is the set of queue names declared in this process.
type queueSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *queueSet) add(q string) {
	s.mu.Lock()
	s.m[q] = true
	s.mu.Unlock()
}

func (s *queueSet) remove(q string) {
	s.mu.Lock()
	delete(s.m, q)
	s.mu.Unlock()
}

func (s *queueSet) has(q string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[q]
}
