package channel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// fakeStore is a pushing store that records what the channel asks of it.
// Its queues are slices; the test pushes with Deliver through the hub.
type fakeStore struct {
	state *channel.State

	mu        sync.Mutex
	queues    map[string][]*transport.Message
	bound     []channel.Binding
	fanouts   []string
	consuming [][]string
	resumes   int
	settles   [][]channel.Settlement
	closed    int
	settleErr error
}

func newFakeStore(state *channel.State) *fakeStore {
	return &fakeStore{state: state, queues: make(map[string][]*transport.Message)}
}

func (s *fakeStore) NewQueue(ctx context.Context, q transport.Queue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[q.Name]; !ok {
		s.queues[q.Name] = nil
	}
	return nil
}

func (s *fakeStore) HasQueue(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.queues[name]
	return ok, nil
}

func (s *fakeStore) Size(ctx context.Context, name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queues[name]), nil
}

func (s *fakeStore) Purge(ctx context.Context, name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queues[name])
	s.queues[name] = nil
	return n, nil
}

func (s *fakeStore) DeleteQueue(ctx context.Context, name string, b []channel.Binding, ifUnused bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queues[name])
	delete(s.queues, name)
	return n, nil
}

func (s *fakeStore) Table(ctx context.Context, exchange string) ([]channel.Row, error) {
	return s.state.Table(exchange), nil
}

func (s *fakeStore) Bind(ctx context.Context, b channel.Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound = append(s.bound, b)
	return nil
}

func (s *fakeStore) Put(ctx context.Context, name string, m *transport.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[name] = append(s.queues[name], m)
	return nil
}

func (s *fakeStore) PutFanout(ctx context.Context, exchange, rk string, m *transport.Message) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fanouts = append(s.fanouts, exchange+"/"+rk+":"+string(m.Body))
	return -1, nil
}

func (s *fakeStore) Get(ctx context.Context, name string, noAck bool) (*transport.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if len(q) == 0 {
		return nil, transport.ErrEmpty
	}
	s.queues[name] = q[1:]
	return q[0], nil
}

func (s *fakeStore) Consuming(queues []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consuming = append(s.consuming, slices.Clone(queues))
}

func (s *fakeStore) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumes++
}

func (s *fakeStore) Settle(batch []channel.Settlement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settles = append(s.settles, slices.Clone(batch))
	return s.settleErr
}

func (s *fakeStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// pullStore is a fakeStore the channel pulls from.
type pullStore struct {
	*fakeStore
	pulls int
}

func (s *pullStore) Pull(name string, dst []*transport.Message) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls++
	n := copy(dst, s.queues[name])
	s.queues[name] = s.queues[name][n:]
	return n
}

// settled flattens the recorded settlements as "op:tag".
func (s *fakeStore) settled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.settles {
		for _, st := range b {
			out = append(out, st.Op.String()+":"+st.Tag)
		}
	}
	return out
}

// runHub starts a hub on a goroutine of the test and stops it at cleanup.
func runHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	started := make(chan struct{})
	h.Post(func() { close(started) })
	<-started
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub.Run: %v", err)
		}
		h.Close()
	})
	return h
}

// onHub runs fn on the hub and waits for it (several turns first, so that
// posted work has run).
func onHub(t *testing.T, h *hub.Hub, fn func()) {
	t.Helper()
	for range 2 {
		if err := h.Call(context.Background(), func() {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Call(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func body(s string) *transport.Message { return &transport.Message{Body: []byte(s)} }

func bodies(ms []*transport.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Body)
	}
	return out
}

// collector gathers deliveries; it is only touched on the hub.
type collector struct{ got []*transport.Message }

func (c *collector) fn(m *transport.Message) { c.got = append(c.got, m) }

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tagOf(c *collector, i int) string { return c.got[i].DeliveryInfo.DeliveryTag }

var _ = fmt.Sprint
