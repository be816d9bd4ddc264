package filesystem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// fetchBatch bounds the messages one claiming pass takes, so that an
// unlimited prefetch window over a deep folder still returns to the hub
// between passes.
const fetchBatch = 256

// youngRetry is how soon a consumer looks again at a folder where it left
// an empty (still being written) file.
const youngRetry = 20 * time.Millisecond

// store is the channel.Store of one filesystem channel. It pushes: the
// connection's executor claims and reads files and posts them to the hub,
// where they are handed to channel.Deliver within the prefetch window.
type store struct {
	c   *Conn
	ch  *channel.Channel
	log *slog.Logger

	// mu guards claims, errs and pending: Get runs on callers' goroutines,
	// Settle on the hub, the jobs on the executor.
	mu      sync.Mutex
	idle    *sync.Cond         // signalled when pending drops to 0
	pending int                // executor jobs submitted and not finished, for WaitClose
	claims  map[string]claimed // by delivery tag: the files this channel holds
	errs    []error            // settlement failures, returned by WaitClose

	// listing is the folder listing the claiming passes share (see
	// listingTTL); only the executor's jobs touch it.
	listing *listing

	// Hub-owned.
	queues   []string // consumed, in order
	fetching bool     // a claiming pass is with the executor
	dirty    bool     // something arrived while fetching
	retry    canceler
	released bool
}

func newStore(c *Conn) *store {
	s := &store{c: c, log: c.t.o.Logger, claims: make(map[string]claimed)}
	s.idle = sync.NewCond(&s.mu)
	return s
}

var (
	_ channel.Store       = (*store)(nil)
	_ channel.NoAckTaker  = (*store)(nil)
	_ channel.CloseWaiter = (*store)(nil)
)

func (s *store) folders() *folders { return s.c.f }

// NewQueue records the queue as declared in this process: Kombu's
// filesystem transport has nothing to create (a queue is the files whose
// names end in .<queue>.msg).
func (s *store) NewQueue(ctx context.Context, q transport.Queue) error {
	if err := checkQueueName(q.Name); err != nil {
		return err
	}
	s.c.t.declared.add(q.Name)
	return nil
}

// HasQueue: a queue exists when this process declared it or files of it
// are waiting (Kombu answers true for any name).
func (s *store) HasQueue(ctx context.Context, queue string) (bool, error) {
	if s.c.t.declared.has(queue) {
		return true, nil
	}
	n, err := s.folders().size(queue)
	return n > 0, err
}

func (s *store) Size(ctx context.Context, queue string) (int, error) {
	return s.folders().size(queue)
}

func (s *store) Purge(ctx context.Context, queue string) (int, error) {
	return s.folders().purge(queue)
}

// DeleteQueue deletes the queue's files; ifUnused is ignored, as Kombu's
// virtual transports ignore it.
func (s *store) DeleteQueue(ctx context.Context, queue string, bindings []channel.Binding, ifUnused bool) (int, error) {
	n, err := s.folders().purge(queue)
	s.c.t.declared.remove(queue)
	return n, err
}

// Table is the process-local binding table (Kombu 5.2.4 keeps bindings in
// its in-memory global_state; nothing is written to the folders).
func (s *store) Table(ctx context.Context, exchange string) ([]channel.Row, error) {
	return s.ch.State().Table(exchange), nil
}

// Bind records nothing outside the process, as Kombu 5.2.4.
func (s *store) Bind(ctx context.Context, b channel.Binding) error { return nil }

// Put writes the message file (Kombu's _put) into the out folder.
func (s *store) Put(ctx context.Context, queue string, m *transport.Message) error {
	if err := checkQueueName(queue); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := encode(m)
	if err != nil {
		return fmt.Errorf("filesystem: encode: %w", err)
	}
	return s.folders().put(queue, data)
}

// PutFanout writes one copy for every queue bound to the exchange in this
// process. Kombu 5.2.4's filesystem transport has no fanout (it raises);
// this is the memory transport's broadcast over the local bindings.
func (s *store) PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error) {
	var done []string
	for _, r := range s.ch.State().Table(exchange) {
		if slices.Contains(done, r.Queue) {
			continue
		}
		if err := s.Put(ctx, r.Queue, m); err != nil {
			return len(done), err
		}
		done = append(done, r.Queue)
	}
	return len(done), nil
}

// Get claims the oldest message of the queue on the caller's goroutine.
func (s *store) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, _ := s.folders().claim([]string{queue}, 1, nil)
	if res.err != nil {
		return nil, res.err
	}
	if len(res.got) == 0 {
		return nil, transport.ErrEmpty
	}
	c := res.got[0]
	m := decode(c.data)
	if noAck {
		if err := s.folders().finish(c.name); err != nil {
			s.log.Error("filesystem: no-ack get: delete failed", "file", c.name, "err", err)
		}
		return m, nil
	}
	s.hold(m, c)
	return m, nil
}

// hold records the claim of m under its delivery tag (giving it one if the
// envelope had none).
func (s *store) hold(m *transport.Message, c claimed) {
	if m.DeliveryInfo.DeliveryTag == "" {
		m.DeliveryInfo.DeliveryTag = channel.NewDeliveryTag()
	}
	s.mu.Lock()
	s.claims[m.DeliveryInfo.DeliveryTag] = c
	s.mu.Unlock()
}

func (s *store) take(tag string) (claimed, bool) {
	s.mu.Lock()
	c, ok := s.claims[tag]
	delete(s.claims, tag)
	s.mu.Unlock()
	return c, ok
}

// Consuming starts or stops claiming for the queues.
func (s *store) Consuming(queues []string) {
	s.queues = append(s.queues[:0], queues...)
	s.kick()
}

// Resume claims again when the prefetch window reopens.
func (s *store) Resume() { s.kick() }

func (s *store) consumes(queue string) bool { return slices.Contains(s.queues, queue) }

// kick starts a claiming pass on the executor unless one is running (then
// it runs again when that one is back). Hub goroutine.
func (s *store) kick() {
	if s.released || len(s.queues) == 0 {
		return
	}
	if s.fetching {
		s.dirty = true
		return
	}
	room := s.ch.Room()
	if room <= 0 {
		return
	}
	n := min(room, fetchBatch)
	qs := slices.Clone(s.queues)
	s.fetching, s.dirty = true, false
	f, h := s.folders(), s.c.h
	ok := s.submit(func() {
		var res claimResult
		res, s.listing = f.claim(qs, n, s.listing)
		msgs := make([]*transport.Message, len(res.got))
		for i, c := range res.got {
			msgs[i] = decode(c.data)
		}
		h.Post(func() { s.fetched(res, msgs) })
	})
	if !ok {
		s.fetching = false
	}
}

// submit hands a job to the connection's executor, counted for WaitClose.
func (s *store) submit(fn func()) bool {
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
	ok := s.c.ex.submit(func() {
		defer s.jobDone()
		fn()
	})
	if !ok {
		s.jobDone()
	}
	return ok
}

func (s *store) jobDone() {
	s.mu.Lock()
	if s.pending--; s.pending == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// fetched delivers what a claiming pass took. Hub goroutine.
func (s *store) fetched(res claimResult, msgs []*transport.Message) {
	s.fetching = false
	var back []claimed
	for i, c := range res.got {
		m := msgs[i]
		if s.released || !s.consumes(c.queue) {
			back = append(back, c) // never delivered: back where it was
			continue
		}
		s.hold(m, c)
		s.ch.Deliver(c.queue, m)
	}
	if len(back) > 0 {
		s.giveBackRaw(back)
	}
	switch {
	case s.released:
	case res.err != nil:
		s.log.Warn("filesystem: claiming failed; trying again after polling_interval", "err", res.err)
		s.later(s.c.t.o.PollingInterval)
	case s.dirty || res.more:
		s.kick()
	case res.young:
		s.later(youngRetry)
	}
}

// later kicks after d (one pending timer at most). Hub goroutine.
func (s *store) later(d time.Duration) {
	if s.retry != nil {
		return
	}
	s.retry = s.c.h.CallLater(d, func() {
		s.retry = nil
		s.kick()
	})
}

// giveBackRaw returns claimed files that were never delivered to the in
// folder under their own names, untouched.
func (s *store) giveBackRaw(cs []claimed) {
	f := s.folders()
	ok := s.submit(func() {
		for _, c := range cs {
			if err := f.giveBack(c, c.data, true); err != nil {
				s.fail(err)
			}
		}
	})
	if !ok {
		s.fail(fmt.Errorf("filesystem: connection closed: %d claimed messages left for recovery", len(cs)))
	}
}

func (s *store) fail(err error) {
	s.log.Error("filesystem: settlement failed", "err", err)
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

// settleOp is one settlement for the executor.
type settleOp struct {
	op channel.Op
	c  claimed
}

// Settle hands acknowledgements, rejections and restores to the executor:
// ack and reject delete the claimed file (or move it to processed_folder),
// requeue writes it back at the end of its queue and restore at the front,
// both marked redelivered. Tags this channel does not hold are ignored.
func (s *store) Settle(batch []channel.Settlement) error {
	ops := make([]settleOp, 0, len(batch))
	for _, st := range batch {
		c, ok := s.take(st.Tag)
		if !ok {
			continue
		}
		ops = append(ops, settleOp{op: st.Op, c: c})
	}
	if len(ops) == 0 {
		return nil
	}
	f := s.folders()
	if !s.submit(func() { s.apply(f, ops) }) {
		return fmt.Errorf("filesystem: connection closed: %d settlements not applied (the claims are left for recovery)", len(ops))
	}
	return nil
}

func (s *store) apply(f *folders, ops []settleOp) {
	for _, o := range ops {
		var err error
		switch o.op {
		case channel.OpAck, channel.OpDrop:
			err = f.finish(o.c.name)
		case channel.OpRequeue, channel.OpRestore:
			data, e := markRedelivered(o.c.data)
			if e != nil {
				data = o.c.data // not an envelope: back as it was
			}
			err = f.giveBack(o.c, data, o.op == channel.OpRestore)
		}
		if err != nil {
			s.fail(fmt.Errorf("filesystem: %s %s: %w", o.op, o.c.name, err))
		}
	}
}

// TakenNoAck settles a message handed to a no-ack consumer.
func (s *store) TakenNoAck(m *transport.Message) {
	s.Settle([]channel.Settlement{{Op: channel.OpAck, Tag: m.DeliveryInfo.DeliveryTag, Message: m}})
}

// Close stops claiming. Hub goroutine.
func (s *store) Close() error {
	s.released = true
	if s.retry != nil {
		s.retry.Cancel()
		s.retry = nil
	}
	s.c.removeStore(s)
	return nil
}

// WaitClose waits for the settlements queued on the executor and returns
// their failures.
func (s *store) WaitClose() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.pending > 0 {
		s.idle.Wait()
	}
	err := errors.Join(s.errs...)
	s.errs = nil
	return err
}
