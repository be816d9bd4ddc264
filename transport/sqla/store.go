package sqla

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// maxClaim bounds the rows one claim takes, whatever the prefetch window.
const maxClaim = 200

// held is a row this channel claimed and has not settled.
type held struct {
	row
	queue string
}

// claimed is a row claimed for the consumers, on its way to the hub.
type claimed struct {
	held
}

// store is the channel.Store of one channel.
type store struct {
	c   *Conn
	ch  *channel.Channel
	log *slog.Logger

	// Hub-owned.
	queues   []string              // consumed, in order
	rot      int                   // rotation of the claim's first queue
	inflight bool                  // a claim is on the executor
	again    bool                  // woken while a claim was in flight
	timer    interface{ Cancel() } // the idle poll (a hub timer), or nil
	closed   bool
	failures int

	woken atomic.Bool // a wake is posted

	mu       sync.Mutex
	tags     map[string]held // delivery tag -> claimed row
	pending  []claimed       // claimed, not yet handed to the hub
	qids     map[int64]bool  // ids of the consumed queues, for notifications
	shut     bool            // Close ran: claims give their rows back at once
	firstErr error           // first failed settlement, returned by WaitClose
	wg       sync.WaitGroup  // executor jobs of this store
}

var (
	_ channel.Store       = (*store)(nil)
	_ channel.NoAckTaker  = (*store)(nil)
	_ channel.CloseWaiter = (*store)(nil)
)

func newStore(c *Conn) *store {
	return &store{c: c, log: c.o.Logger, tags: make(map[string]held), qids: make(map[int64]bool)}
}

func (s *store) NewQueue(ctx context.Context, q transport.Queue) error {
	_, err := s.c.db.queueID(ctx, q.Name, true)
	return s.c.wrap("declare queue", err)
}

func (s *store) HasQueue(ctx context.Context, name string) (bool, error) {
	_, err := s.c.db.queueID(ctx, name, false)
	if errors.Is(err, errNoQueue) {
		return false, nil
	}
	return err == nil, s.c.wrap("queue exists", err)
}

func (s *store) Size(ctx context.Context, name string) (int, error) {
	qid, err := s.c.db.queueID(ctx, name, false)
	if errors.Is(err, errNoQueue) {
		return 0, nil
	}
	if err != nil {
		return 0, s.c.wrap("size", err)
	}
	n, err := s.c.db.count(ctx, s.c.db.size, qid)
	return n, s.c.wrap("size", err)
}

// Purge deletes the queue's ready (visible) rows. Kombu's _purge deletes
// its invisible rows too, which are in flight or were acknowledged by
// Kombu (it never deletes them); ours in flight stay, to be settled.
func (s *store) Purge(ctx context.Context, name string) (int, error) {
	qid, err := s.c.db.queueID(ctx, name, false)
	if errors.Is(err, errNoQueue) {
		return 0, nil
	}
	if err != nil {
		return 0, s.c.wrap("purge", err)
	}
	n, err := s.c.db.purgeQueue(ctx, qid)
	return n, s.c.wrap("purge", err)
}

// DeleteQueue purges the queue, as Kombu's (virtual) _delete does; the
// queue's row stays, because another process may hold its id. ifUnused is
// ignored, as in Kombu.
func (s *store) DeleteQueue(ctx context.Context, name string, _ []channel.Binding, _ bool) (int, error) {
	return s.Purge(ctx, name)
}

// Table returns the process-local binding table: Kombu's SQLAlchemy
// transport keeps bindings in memory (the virtual BrokerState).
func (s *store) Table(ctx context.Context, exchange string) ([]channel.Row, error) {
	return s.c.t.state.Table(exchange), nil
}

func (s *store) Bind(ctx context.Context, b channel.Binding) error { return nil }

func (s *store) Put(ctx context.Context, queue string, m *transport.Message) error {
	payload, err := encodeMessage(m)
	if err != nil {
		return fmt.Errorf("sqla: publish: %w", err)
	}
	return s.put(ctx, queue, payload)
}

func (s *store) put(ctx context.Context, queue string, payload []byte) error {
	qid, err := s.c.db.queueID(ctx, queue, true)
	if err != nil {
		return s.c.wrap("publish", err)
	}
	if err := s.c.db.put(ctx, qid, payload); err != nil {
		if isFKError(err) {
			// The queue row was deleted behind our back: make it again.
			s.c.db.forget(queue)
			if qid, err = s.c.db.queueID(ctx, queue, true); err == nil {
				err = s.c.db.put(ctx, qid, payload)
			}
		}
		if err != nil {
			return s.c.wrap("publish", err)
		}
	}
	s.c.t.wakeQueue(queue)
	return nil
}

// PutFanout stores a copy in every queue bound to the exchange in this
// process (Kombu's SQLAlchemy transport has no fanout: its virtual
// _put_fanout raises NotImplementedError; ours is the memory transport's
// store-and-forward).
func (s *store) PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error) {
	var buf [8]string
	queues := channel.Lookup(transport.Fanout, s.c.t.state.Table(exchange), routingKey, nil, "", buf[:0])
	for i, q := range queues {
		mm := *m
		if i > 0 {
			mm.DeliveryInfo.DeliveryTag = channel.NewDeliveryTag()
		}
		if err := s.Put(ctx, q, &mm); err != nil {
			return i, err
		}
	}
	return len(queues), nil
}

// Get claims one row (Kombu's _get); with noAck the row is deleted at
// once.
func (s *store) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	qid, err := s.c.db.queueID(ctx, queue, true)
	if err != nil {
		return nil, s.c.wrap("get", err)
	}
	rows, err := s.c.db.claim(ctx, qid, 1)
	if err != nil {
		return nil, s.c.wrap("get", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("sqla: queue %q: %w", queue, transport.ErrEmpty)
	}
	m := decodeMessage(rows[0].payload)
	if noAck {
		if err := s.c.db.deleteIDs(ctx, []int64{rows[0].id}); err != nil {
			return nil, s.c.wrap("get", err)
		}
		return m, nil
	}
	s.mu.Lock()
	s.hold(m, held{row: rows[0], queue: queue})
	s.mu.Unlock()
	return m, nil
}

// hold records a claimed row under the message's delivery tag, giving the
// message a new tag if another held row has it (a payload published twice,
// or requeued by Python Kombu while we hold the first copy). s.mu held.
func (s *store) hold(m *transport.Message, h held) {
	if _, dup := s.tags[m.DeliveryInfo.DeliveryTag]; dup {
		m.DeliveryInfo.DeliveryTag = channel.NewDeliveryTag()
	}
	s.tags[m.DeliveryInfo.DeliveryTag] = h
}

// Consuming records the consumed queues and claims at once.
func (s *store) Consuming(queues []string) {
	s.queues = append(s.queues[:0], queues...)
	s.c.t.subscribe(s, s.queues)
	if len(queues) == 0 {
		s.mu.Lock()
		clear(s.qids)
		s.mu.Unlock()
		s.stopTimer()
		return
	}
	s.c.startListener()
	s.kick()
}

// Resume claims again: the prefetch window reopened.
func (s *store) Resume() { s.kick() }

// wake asks for a claim in the hub's next turn; safe from any goroutine,
// and many calls before that turn cost one post.
func (s *store) wake() {
	if s.woken.Load() || !s.woken.CompareAndSwap(false, true) {
		return
	}
	s.c.h.Post(func() {
		s.woken.Store(false)
		s.kick()
	})
}

// wakeFor wakes the store if it consumes the queue with this id.
func (s *store) wakeFor(qid int64) {
	s.mu.Lock()
	ok := s.qids[qid]
	s.mu.Unlock()
	if ok {
		s.wake()
	}
}

func (s *store) stopTimer() {
	if s.timer != nil {
		s.timer.Cancel()
		s.timer = nil
	}
}

// kick starts a claim unless one is in flight, nothing is consumed or the
// prefetch window is full. Hub goroutine.
func (s *store) kick() {
	if s.closed || len(s.queues) == 0 {
		return
	}
	if s.inflight {
		s.again = true
		return
	}
	n := s.ch.Room()
	if n <= 0 {
		return // Resume comes when acknowledgements make room
	}
	n = min(n, maxClaim)
	s.stopTimer()
	s.inflight, s.again = true, false
	queues := slices.Clone(s.queues)
	start := s.rot % len(queues)
	s.rot++
	s.wg.Add(1)
	if !s.c.exec.submit(func() { s.claim(queues, start, n) }) {
		s.wg.Done()
		s.inflight = false
	}
}

// claim runs on the executor: up to n rows from the queues, starting at
// queues[start] (a fair cycle over the rotations), then posted to the hub.
func (s *store) claim(queues []string, start, n int) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.c.ctx, s.c.o.ConnectTimeout+30*time.Second)
	defer cancel()
	var got []claimed
	var err error
	s.c.maybeSweep(ctx)
	for i := range queues {
		q := queues[(start+i)%len(queues)]
		var qid int64
		if qid, err = s.c.db.queueID(ctx, q, true); err != nil {
			break
		}
		s.mu.Lock()
		s.qids[qid] = true
		s.mu.Unlock()
		var rows []row
		if rows, err = s.c.db.claim(ctx, qid, n-len(got)); err != nil {
			break
		}
		for _, r := range rows {
			got = append(got, claimed{held{row: r, queue: q}})
		}
		if len(got) >= n {
			break
		}
	}
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		s.giveBack(ctx, got)
		return
	}
	s.pending = append(s.pending, got...)
	s.mu.Unlock()
	s.c.h.Post(func() { s.delivered(err) })
}

// giveBack makes rows claimed for nobody visible again, unchanged.
// Executor.
func (s *store) giveBack(ctx context.Context, rows []claimed) {
	for _, r := range rows {
		if err := retry(ctx, func() error { _, err := s.c.db.restoreRow(ctx, r.row); return err }); err != nil {
			s.fail(fmt.Errorf("sqla: giving back message %d of %q: %w", r.id, r.queue, err))
		}
	}
}

// retry runs fn until it succeeds, fails with an error other than a lost
// connection, or ctx ends: a settlement must survive a database restart or
// a cut connection (the pool redials).
func retry(ctx context.Context, fn func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || !isConnError(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (s *store) fail(err error) {
	s.log.Error("sqla: settlement failed", "err", err)
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

// delivered hands claimed rows to the channel and decides when to claim
// next. Hub goroutine.
func (s *store) delivered(err error) {
	s.inflight = false
	if s.closed {
		return
	}
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	msgs := make([]*transport.Message, len(batch))
	for i, c := range batch {
		msgs[i] = decodeMessage(c.payload)
		s.hold(msgs[i], c.held)
	}
	s.mu.Unlock()
	for i, c := range batch {
		s.ch.Deliver(c.queue, msgs[i])
	}
	switch {
	case err != nil:
		s.failures++
		s.log.Warn("sqla: claim failed; retrying", "err", err, "failures", s.failures)
		s.schedule(min(s.c.o.PollingInterval*time.Duration(s.failures), 5*s.c.o.PollingInterval+time.Second))
	case len(batch) > 0 || s.again:
		s.failures = 0
		s.kick()
		if !s.inflight && !s.closed && len(s.queues) > 0 && s.ch.Room() > 0 {
			s.schedule(s.idle())
		}
	default:
		s.failures = 0
		s.schedule(s.idle())
	}
}

// idle is how long to wait before polling queues found empty: Kombu's
// polling_interval, or the safety interval while notifications arrive.
// The visibility sweep rides on claims, so a lease shortens the wait to
// the sweep's period.
func (s *store) idle() time.Duration {
	d := s.c.o.PollingInterval
	if s.c.listening.Load() {
		d = s.c.o.ListenPollInterval
	}
	if every := s.c.sweepEvery(); every > 0 {
		d = min(d, every)
	}
	return d
}

func (s *store) schedule(d time.Duration) {
	s.stopTimer()
	if s.closed || len(s.queues) == 0 {
		return
	}
	s.timer = s.c.h.CallLater(d, func() {
		s.timer = nil
		s.kick()
	})
}

// TakenNoAck deletes the row of a message a no-ack consumer took.
func (s *store) TakenNoAck(m *transport.Message) {
	s.mu.Lock()
	h, ok := s.tags[m.DeliveryInfo.DeliveryTag]
	delete(s.tags, m.DeliveryInfo.DeliveryTag)
	s.mu.Unlock()
	if ok {
		s.settle([]int64{h.id}, nil, nil)
	}
}

// Settle deletes acknowledged and dropped rows, makes restored rows
// visible again where they were (consumed next) and moves requeued rows to
// the back of their queue, both marked redelivered. The work runs on the
// executor; a failure is logged and returned by WaitClose.
func (s *store) Settle(batch []channel.Settlement) error {
	var dels []int64
	var restores, requeues []held
	s.mu.Lock()
	for _, st := range batch {
		h, ok := s.tags[st.Tag]
		if !ok {
			continue // not ours (a tag of another channel, or settled twice)
		}
		delete(s.tags, st.Tag)
		switch st.Op {
		case channel.OpAck, channel.OpDrop:
			dels = append(dels, h.id)
		case channel.OpRestore:
			h.payload = redelivered(h.payload)
			restores = append(restores, h)
		case channel.OpRequeue:
			h.payload = redelivered(h.payload)
			requeues = append(requeues, h)
		}
	}
	s.mu.Unlock()
	if len(dels)+len(restores)+len(requeues) > 0 {
		s.settle(dels, restores, requeues)
	}
	return nil
}

func (s *store) settle(dels []int64, restores, requeues []held) {
	s.wg.Add(1)
	ok := s.c.exec.submit(func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.c.o.ConnectTimeout+30*time.Second)
		defer cancel()
		if len(dels) > 0 {
			if err := retry(ctx, func() error { return s.c.db.deleteIDs(ctx, dels) }); err != nil {
				s.fail(fmt.Errorf("sqla: ack: %w", err))
			}
		}
		for _, h := range restores {
			if err := retry(ctx, func() error { _, err := s.c.db.restoreRow(ctx, h.row); return err }); err != nil {
				s.fail(fmt.Errorf("sqla: restoring message %d of %q: %w", h.id, h.queue, err))
				continue
			}
			s.c.t.wakeQueue(h.queue)
		}
		for _, h := range requeues {
			if err := retry(ctx, func() error { return s.c.db.requeueRow(ctx, h.row) }); err != nil {
				s.fail(fmt.Errorf("sqla: requeuing message %d of %q: %w", h.id, h.queue, err))
				continue
			}
			s.c.t.wakeQueue(h.queue)
		}
	})
	if !ok {
		s.wg.Done()
		s.fail(errors.New("sqla: settlement after the connection closed: the rows stay invisible"))
	}
}

// Close stops consuming; rows claimed but not yet handed over go back to
// their queues. Hub goroutine.
func (s *store) Close() error {
	s.closed = true
	s.stopTimer()
	s.c.t.subscribe(s, nil)
	s.c.removeStore(s)
	s.mu.Lock()
	s.shut = true
	pend := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(pend) > 0 {
		s.wg.Add(1)
		if !s.c.exec.submit(func() {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.c.o.ConnectTimeout+30*time.Second)
			defer cancel()
			s.giveBack(ctx, pend)
		}) {
			s.wg.Done()
		}
	}
	return nil
}

// WaitClose waits for the executor's work of this channel (its last
// acknowledgements and restores) and returns the first failure.
func (s *store) WaitClose() error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}
