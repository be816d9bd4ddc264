package messaging_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// resumeBound is issue 10's bound on AMQP recovery: after each broker-side
// close, and after a broker restart, the consumer resumes within 1 s.
const resumeBound = time.Second

// stream publishes numbered messages every 10 ms from a connection of its
// own, and records what a consumer receives and when.
type stream struct {
	mu       sync.Mutex
	sent     map[int]time.Time // n -> publication (confirmed)
	got      map[int]int       // n -> deliveries
	lastRecv time.Time
	recvAt   []recv
	paused   bool
	n        int
}

type recv struct {
	n  int
	at time.Time
}

func newStream() *stream { return &stream{sent: map[int]time.Time{}, got: map[int]int{}} }

// callback records a delivery and acknowledges it.
func (s *stream) callback(body any, m *messaging.Message) {
	n := int(body.(map[string]any)["n"].(int64))
	s.mu.Lock()
	s.got[n]++
	s.recvAt = append(s.recvAt, recv{n, time.Now()})
	s.mu.Unlock()
	m.Ack()
}

// publish runs until ctx ends; failed publications (the broker down) are
// retried with the same number, so every number is confirmed once.
func (s *stream) publish(ctx context.Context, t *testing.T, p *messaging.Producer) {
	for ctx.Err() == nil {
		s.mu.Lock()
		n, paused := s.n, s.paused
		s.mu.Unlock()
		if !paused {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := p.Publish(pctx, map[string]any{"n": n}, messaging.PublishOptions{})
			cancel()
			if err == nil {
				s.mu.Lock()
				s.sent[n] = time.Now()
				s.n++
				s.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// resumedAfter waits until a message published after t0 is delivered and
// returns how long after t0 that was.
func (s *stream) resumedAfter(t *testing.T, t0 time.Time, limit time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, r := range s.recvAt {
			if pub, ok := s.sent[r.n]; ok && pub.After(t0) && r.at.After(t0) {
				s.mu.Unlock()
				return r.at.Sub(t0)
			}
		}
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no delivery of a message published after %v within %v", t0.Format("15:04:05.000"), limit)
	return 0
}

// lost waits for every confirmed message to arrive, and returns those that
// did not.
func (s *stream) lost(limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		s.mu.Lock()
		var missing []int
		for n := range s.sent {
			if s.got[n] == 0 {
				missing = append(missing, n)
			}
		}
		s.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// consumerModes runs the consumer of a recovery test the two ways issue 10
// names: on a hub that h.Run drives (hub mode), and under a ConsumerWorker.
// start returns a stop function.
var consumerModes = []struct {
	name  string
	start func(t *testing.T, url string, opts messaging.Options, q messaging.Queue, s *stream) (stop func())
}{
	{"hub", func(t *testing.T, url string, opts messaging.Options, q messaging.Queue, s *stream) func() {
		h, err := hub.New(hub.Options{})
		if err != nil {
			t.Fatal(err)
		}
		opts.Hub = h
		conn, err := messaging.NewConnection(url, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- h.Run(ctx) }()
		cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
			PrefetchCount: 10, Callbacks: []messaging.Callback{s.callback}})
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if err := cons.Consume(cctx); err != nil {
			t.Fatal(err)
		}
		return func() {
			conn.Close()
			cancel()
			<-ran
			h.Close()
		}
	}},
	{"worker", func(t *testing.T, url string, opts messaging.Options, q messaging.Queue, s *stream) func() {
		tmpl, err := messaging.NewConnection(url, opts)
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{}, 1)
		w, err := messaging.NewConsumerWorker(tmpl, messaging.ConsumerWorkerOptions{
			Consumers: func(*messaging.Connection) ([]messaging.ConsumerOptions, error) {
				return []messaging.ConsumerOptions{{Queues: []messaging.Queue{q}, PrefetchCount: 10,
					Callbacks: []messaging.Callback{s.callback}}}, nil
			},
			OnConsumeReady: func(*messaging.Connection, []*messaging.Consumer) {
				select {
				case ready <- struct{}{}:
				default:
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan error, 1)
		go func() { ran <- w.Run(context.Background()) }()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatal("the worker did not start consuming")
		}
		return func() {
			w.Stop()
			if err := <-ran; err != nil {
				t.Errorf("worker: %v", err)
			}
			tmpl.Close()
		}
	}},
}

// brokerPids lists the broker-side ids of the connections named name.
func brokerPids(t *testing.T, ctl, name string) []string {
	t.Helper()
	out, err := exec.Command(ctl, "list_connections", "pid", "client_properties", "--no-table-headers", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v\n%s", err, out)
	}
	var pids []string
	for _, line := range strings.Split(string(out), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if ok && strings.Contains(props, `{"connection_name","`+name+`"}`) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestAMQPRepeatedClose is issue 10's AMQP recovery test: the broker
// closes the consumer's connection 10 times, 1 s apart (rabbitmqctl
// close_connection), with default recovery options, in hub mode and under a
// ConsumerWorker. Each time the consumer resumes within 1 s (a message
// published after the close is delivered), and in the end every confirmed
// message has been delivered. The resume times are logged.
func TestAMQPRepeatedClose(t *testing.T) {
	url := brokerURL(t, "KOMBU_TEST_AMQP_URL")
	ctl := os.Getenv("KOMBU_TEST_RABBITMQCTL")
	if ctl == "" {
		transporttest.Require(t, "KOMBU_TEST_RABBITMQCTL is not set: no rabbitmqctl for the broker")
	}
	for _, mode := range consumerModes {
		t.Run(mode.name, func(t *testing.T) {
			name := "kombu-go-close-" + messaging.NewUUID()[:8]
			opts := brokerOptions()
			opts.TransportOptions = map[string]any{"connection_name": name}
			s, q := newStream(), messaging.Queue{Name: name}
			pubOpts := brokerOptions()
			pubOpts.TransportOptions = map[string]any{"confirm_publish": true}
			pub, err := messaging.NewConnection(url, pubOpts)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if ch, err := pub.DefaultChannel(ctx); err != nil {
				t.Fatal(err)
			} else if _, err := q.Declare(ctx, ch); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if ch, err := pub.DefaultChannel(context.Background()); err == nil {
					q.Delete(context.Background(), ch, messaging.DeleteOptions{})
				}
			}()
			stop := mode.start(t, url, opts, q, s)
			p, _ := messaging.NewProducer(pub, messaging.ProducerOptions{RoutingKey: q.Name})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); s.publish(ctx, t, p) }()
			s.resumedAfter(t, time.Now(), 10*time.Second)
			var worst time.Duration
			var resumes, gaps []string
			var last time.Time
			for i := range 10 {
				// 1 s after the last close, or as soon as rabbitmqctl
				// allows (each call takes about half a second here).
				if i == 0 {
					time.Sleep(time.Second)
				} else if wait := time.Second - time.Since(last); wait > 0 {
					time.Sleep(wait)
				}
				pids := brokerPids(t, ctl, name)
				if len(pids) != 1 {
					t.Fatalf("close %d: want one broker connection named %s, found %v", i+1, name, pids)
				}
				closed := time.Now()
				if out, err := exec.Command(ctl, "close_connection", pids[0], "kombu-go test").CombinedOutput(); err != nil {
					t.Fatalf("rabbitmqctl close_connection: %v\n%s", err, out)
				}
				if i > 0 {
					gaps = append(gaps, closed.Sub(last).Round(10*time.Millisecond).String())
				}
				last = closed
				d := s.resumedAfter(t, closed, 30*time.Second)
				worst = max(worst, d)
				resumes = append(resumes, d.Round(time.Millisecond).String())
				if d >= resumeBound {
					t.Errorf("close %d: the consumer resumed after %v, want under %v", i+1, d, resumeBound)
				}
			}
			cancel()
			wg.Wait()
			missing := s.lost(30 * time.Second)
			stop()
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Logf("%s mode: closes %s apart; resumed after %s (worst %v, bound %v: margin %.1fx); %d messages confirmed, %d lost",
				mode.name, strings.Join(gaps, ", "), strings.Join(resumes, ", "), worst.Round(time.Millisecond),
				resumeBound, float64(resumeBound)/float64(worst), len(s.sent), len(missing))
			if len(missing) > 0 {
				t.Errorf("%d confirmed messages never delivered: %v", len(missing), missing)
			}
		})
	}
}

// TestAMQPBrokerRestart stops and starts a PRIVATE RabbitMQ node (scripts/
// brokers.sh rabbit-start, through KOMBU_TEST_RABBIT_CTL; the shared broker
// is never stopped) under a consumer in hub mode and one under a
// ConsumerWorker, with a retry policy of at most 0.3 s between attempts
// and no retry limit. Once the node runs again, each consumer resumes
// within 1 s, and every confirmed message (durable queue, persistent
// messages) is delivered.
func TestAMQPBrokerRestart(t *testing.T) {
	ctl := os.Getenv("KOMBU_TEST_RABBIT_CTL")
	if ctl == "" {
		transporttest.Require(t, "KOMBU_TEST_RABBIT_CTL is not set: no private RabbitMQ node can be started")
	}
	dir := t.TempDir()
	run := func(cmd string) string {
		t.Helper()
		out, err := exec.Command(ctl, cmd, dir).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("%s %s: %v\n%s", ctl, cmd, err, ee.Stderr)
			}
			t.Fatalf("%s %s: %v", ctl, cmd, err)
		}
		return strings.TrimSpace(string(out))
	}
	url := run("rabbit-start")
	t.Cleanup(func() { exec.Command(ctl, "rabbit-stop", dir).Run() })
	policy := map[string]any{"interval_start": 0.1, "interval_step": 0.1, "interval_max": 0.2, "max_retries": nil}
	for _, mode := range consumerModes {
		t.Run(mode.name, func(t *testing.T) {
			opts := brokerOptions()
			opts.TransportOptions = policy
			pubOpts := brokerOptions()
			pubOpts.TransportOptions = map[string]any{"confirm_publish": true}
			for k, v := range policy {
				pubOpts.TransportOptions[k] = v
			}
			s := newStream()
			q := messaging.Queue{Name: "kombu-go-restart-" + messaging.NewUUID()[:8], Durable: true}
			pub, err := messaging.NewConnection(url, pubOpts)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if ch, err := pub.DefaultChannel(ctx); err != nil {
				t.Fatal(err)
			} else if _, err := q.Declare(ctx, ch); err != nil {
				t.Fatal(err)
			}
			stop := mode.start(t, url, opts, q, s)
			p, _ := messaging.NewProducer(pub, messaging.ProducerOptions{RoutingKey: q.Name})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); s.publish(ctx, t, p) }()
			s.resumedAfter(t, time.Now(), 10*time.Second)
			time.Sleep(500 * time.Millisecond)
			s.mu.Lock()
			s.paused = true // publications would only fail while the node is down
			s.mu.Unlock()
			run("rabbit-stop")
			time.Sleep(500 * time.Millisecond)
			run("rabbit-start")
			up := time.Now()
			s.mu.Lock()
			s.paused = false
			s.mu.Unlock()
			d := s.resumedAfter(t, up, 60*time.Second)
			cancel()
			wg.Wait()
			missing := s.lost(30 * time.Second)
			stop()
			if ch, err := pub.DefaultChannel(context.Background()); err == nil {
				q.Delete(context.Background(), ch, messaging.DeleteOptions{})
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Logf("%s mode: resumed %v after the node was up again (bound %v: margin %.1fx); %d messages confirmed, %d lost",
				mode.name, d.Round(time.Millisecond), resumeBound, float64(resumeBound)/float64(d), len(s.sent), len(missing))
			if d >= resumeBound {
				t.Errorf("the consumer resumed %v after the node was up, want under %v", d, resumeBound)
			}
			if len(missing) > 0 {
				t.Errorf("%d confirmed messages never delivered: %v", len(missing), missing)
			}
		})
	}
}
