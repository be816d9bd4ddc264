package faulttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
)

// ConsumerConfig is what the consumer process is told, as JSON in the
// environment variable ConfigEnv.
type ConsumerConfig struct {
	// URL of the broker, e.g. redis://127.0.0.1:6379/0.
	URL string `json:"url"`
	// TransportOptions are Kombu's transport options (visibility_timeout,
	// unacked_restore_interval, global_keyprefix, ...).
	TransportOptions map[string]any `json:"transport_options"`
	// Exchange is the direct exchange the queues are bound to (each with its
	// own name as the routing key). The test declares them; the consumer
	// does not (NoDeclare), as a fleet of workers restarting would not.
	Exchange string `json:"exchange"`
	// Queues to consume from.
	Queues []string `json:"queues"`
	// Prefetch is the consumer's prefetch count.
	Prefetch int `json:"prefetch"`
	// Out is the file each delivered id is appended to, one per line.
	Out string `json:"out"`
}

// The environment of the consumer process.
const (
	// RoleEnv selects the role of a re-executed test binary: "consumer".
	RoleEnv = "KOMBU_FAULT_ROLE"
	// ConfigEnv holds the ConsumerConfig as JSON.
	ConfigEnv = "KOMBU_FAULT_CONSUMER"
	// ReadyLine is what the consumer prints on stdout once it consumes.
	ReadyLine = "consuming"
)

// ConfigFromEnv reads the ConsumerConfig of ConfigEnv.
func ConfigFromEnv() (ConsumerConfig, error) {
	var cfg ConsumerConfig
	raw := os.Getenv(ConfigEnv)
	if raw == "" {
		return cfg, fmt.Errorf("faulttest: %s is not set", ConfigEnv)
	}
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return cfg, fmt.Errorf("faulttest: %s: %w", ConfigEnv, err)
	}
	return cfg, nil
}

// RunConsumer consumes as a user of the library would: a hub of its own
// run with hub.Run, a messaging.Connection on it, and a Consumer whose
// callback appends the message's id and "\n" to cfg.Out with one write(2)
// on an O_APPEND descriptor and then acknowledges it. It calls ready once
// Consume has returned, and runs until ctx is done; it then cancels the
// consumer and closes the connection (which gives back what it still
// holds), so that a clean stop loses and duplicates nothing.
//
// A message whose body is not a string, or whose line cannot be written,
// is not acknowledged, and ends the run with an error.
func RunConsumer(ctx context.Context, cfg ConsumerConfig, log *slog.Logger, ready func()) (err error) {
	out, err := os.OpenFile(cfg.Out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()

	h, err := hub.New(hub.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, h.Close()) }()
	runCtx, stopHub := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() { // owned here; joined below before the hub closes
		defer wg.Done()
		if err := h.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			runErr = err
		}
	}()
	defer func() {
		stopHub()
		wg.Wait()
		err = errors.Join(err, runErr)
	}()

	conn, err := messaging.NewConnection(cfg.URL, messaging.Options{
		Hub: h, TransportOptions: cfg.TransportOptions, Logger: log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close()) }()

	// failed ends the run at the first callback that could not do its job;
	// callbacks run on the hub goroutine, the check on this one.
	var failMu sync.Mutex
	var failure error
	failCtx, fail := context.WithCancel(ctx)
	defer fail()
	failWith := func(e error) {
		failMu.Lock()
		if failure == nil {
			failure = e
		}
		failMu.Unlock()
		fail()
	}
	line := make([]byte, 0, 64)
	ex := messaging.NewExchange(cfg.Exchange, messaging.Direct)
	queues := make([]messaging.Queue, len(cfg.Queues))
	for i, name := range cfg.Queues {
		queues[i] = messaging.NewQueue(name, ex, name)
	}
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        queues,
		PrefetchCount: cfg.Prefetch,
		NoDeclare:     true,
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			id, ok := body.(string)
			if !ok {
				failWith(fmt.Errorf("faulttest: body is %T, not an id string", body))
				return
			}
			line = append(append(line[:0], id...), '\n')
			// One write(2) on an O_APPEND descriptor: the line is in the file
			// (the page cache survives SIGKILL) before the ack is sent.
			if n, err := out.Write(line); err != nil || n != len(line) {
				failWith(fmt.Errorf("faulttest: write %q: %d bytes, %v", id, n, err))
				return
			}
			if err := m.Ack(); err != nil {
				log.Warn("faulttest: ack failed", "id", id, "err", err)
			}
		}},
		OnDecodeError: func(m *messaging.Message, err error) {
			failWith(fmt.Errorf("faulttest: undecodable message: %w", err))
		},
	})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cons.Consume(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("faulttest: consume: %w", err)
	}
	ready()
	<-failCtx.Done()

	cctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = cons.Cancel(cctx)
	failMu.Lock()
	defer failMu.Unlock()
	return errors.Join(failure, err)
}
