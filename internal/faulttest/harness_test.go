package faulttest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// The consumers' transport options: a short visibility timeout swept every
// second, so that what a killed consumer held comes back within seconds.
const (
	visibilityTimeout = 3 * time.Second
	sweepInterval     = 1 * time.Second
	// restoreWindow bounds the time from a message's last unacknowledged
	// delivery to its restore: the timeout, whole-second rounding of the
	// index score, a few sweeps and slack.
	restoreWindow = visibilityTimeout + time.Second + 4*sweepInterval + time.Second
)

// prioritySuffixes are the keys of Kombu's priority steps 3, 6 and 9 after
// a queue's name (step 0 is the name itself), with Kombu's separator.
var prioritySuffixes = []string{"\x06\x163", "\x06\x166", "\x06\x169"}

// redisURL returns KOMBU_TEST_REDIS_URL or skips (fails with
// KOMBU_REQUIRE_BROKERS=1).
func redisURL(t *testing.T) string {
	t.Helper()
	return transporttest.BrokerURL(t, "KOMBU_TEST_REDIS_URL")
}

// fault is one injected fault, for the report.
type fault struct {
	at   time.Duration // since the ledger's start
	what string
}

// env is one fault test's world: a key prefix of its own, an exchange and
// its queues declared in Redis, a producer, a client to look at the keys,
// the ledger of publishes, the consumers' output file and log.
type env struct {
	t        *testing.T
	prefix   string // global_keyprefix
	exchange string
	queues   []string
	prefetch int
	layout   layout // where the queues' keys are

	rdb    goredis.UniversalClient // a cluster client on a Redis Cluster
	conn   *messaging.Connection
	prod   *messaging.Producer
	ledger *Ledger
	out    string   // the consumers' file of ids
	logf   *os.File // the consumers' stderr, all incarnations
	faults []fault
	procs  int // consumers started
}

// newEnv declares nqueues queues bound to a direct exchange under a fresh
// global_keyprefix on the Redis at url (redis:// or redis+cluster://),
// where the test publishes and looks (its consumers may reach it another
// way). Everything is closed and the keys deleted at cleanup.
func newEnv(t *testing.T, url string, nqueues, prefetch int) *env {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	e := &env{t: t, prefix: "faulttest-" + hex.EncodeToString(b[:]) + ":", exchange: "fx",
		prefetch: prefetch, ledger: NewLedger()}
	for i := range nqueues {
		e.queues = append(e.queues, fmt.Sprintf("fq%04d", i))
	}
	dir := t.TempDir()
	e.out = filepath.Join(dir, "ids")
	var err error
	if e.logf, err = os.Create(filepath.Join(dir, "consumers.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.logf.Close() })

	e.layout.prefix = e.prefix
	if e.rdb, e.layout.cluster, err = newRedisClient(url); err != nil {
		t.Fatalf("broker URL %q: %v", url, err)
	}
	t.Cleanup(func() {
		e.deleteKeys()
		e.rdb.Close()
	})

	e.conn, err = messaging.NewConnection(url, messaging.Options{
		TransportOptions: map[string]any{"global_keyprefix": e.prefix}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.conn.Close(); err != nil {
			t.Errorf("closing the producer's connection: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch, err := e.conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ex := messaging.NewExchange(e.exchange, messaging.Direct)
	for _, name := range e.queues {
		if _, err := messaging.NewQueue(name, ex, name).Declare(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	e.prod, err = messaging.NewProducer(e.conn, messaging.ProducerOptions{Exchange: ex, NoDeclare: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// consumerOptions are the transport options every consumer runs with.
func (e *env) consumerOptions() map[string]any {
	return map[string]any{
		"global_keyprefix":         e.prefix,
		"visibility_timeout":       int(visibilityTimeout / time.Second),
		"unacked_restore_interval": int(sweepInterval / time.Second),
		"unacked_restore_throttle": 1,
	}
}

// fault records an injected fault.
func (e *env) fault(format string, args ...any) {
	e.faults = append(e.faults, fault{at: e.ledger.Since(), what: fmt.Sprintf(format, args...)})
	fmt.Fprintf(e.logf, "=== test: %s at +%v\n", e.faults[len(e.faults)-1].what, e.faults[len(e.faults)-1].at.Round(time.Millisecond))
}

// deleteKeys removes every key of the test's prefix.
func (e *env) deleteKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, _ := e.keys(ctx)
	deleteEach(ctx, e.rdb, keys)
}

// keys returns every key of the test's prefix (on every master of a
// cluster).
func (e *env) keys(ctx context.Context) ([]string, error) {
	return scanKeys(ctx, e.rdb, e.prefix+"*")
}

// messageKeys are the keys that hold messages (layout.messageKeyGroups):
// every queue's priority lists, and the unacked hash and unacked_index
// zset of its records.
func (e *env) messageKeys() []string {
	return slices.Concat(e.layout.messageKeyGroups(e.queues)...)
}

// busy reports whether Redis holds any message of the test (an error
// counts as busy: nothing can be concluded): one EXISTS per group of keys
// sharing a slot, pipelined.
func (e *env) busy(ctx context.Context) bool {
	groups := e.layout.messageKeyGroups(e.queues)
	cmds, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, g := range groups {
			p.Exists(ctx, g...)
		}
		return nil
	})
	if err != nil {
		return true
	}
	for _, c := range cmds {
		if c.(*goredis.IntCmd).Val() > 0 {
			return true
		}
	}
	return false
}

// leftovers returns the keys of the test still in Redis at the end, in
// two sets: judged are the message keys (queues, unacked, unacked_index),
// which must all be gone; others are keys a transport may keep for itself
// (anything but the binding sets and the sweeps' mutexes), reported but
// not judged, so that the test holds whatever the transport's internals
// become.
func (e *env) leftovers(ctx context.Context) (judged, others []string, err error) {
	keys, err := e.keys(ctx)
	message := map[string]bool{}
	for _, k := range e.messageKeys() {
		message[k] = true
	}
	mutex := map[string]bool{}
	for _, k := range e.layout.mutexKeys(e.queues) {
		mutex[k] = true
	}
	for _, k := range keys {
		name := strings.TrimPrefix(k, e.prefix)
		switch {
		case message[k]:
			judged = append(judged, k)
		case strings.HasPrefix(name, "_kombu.binding.") || mutex[k]:
		default:
			others = append(others, k)
		}
	}
	slices.Sort(judged)
	slices.Sort(others)
	return judged, others, err
}

// consumer is one consumer process.
type consumer struct {
	n     int
	cmd   *exec.Cmd
	ready chan struct{}
	done  chan struct{} // closed once the process was reaped; err is set then
	err   error
}

// readyWriter closes ready when the consumer prints ReadyLine on stdout.
type readyWriter struct {
	ready chan struct{}
	once  sync.Once
	buf   []byte
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if strings.Contains(string(w.buf), ReadyLine+"\n") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

// startConsumer starts a consumer process (this test binary, re-executed)
// on url with the env's queues, prefetch and consumer options. Cleanup
// kills it if the test has not stopped it.
func (e *env) startConsumer(url string) *consumer {
	e.t.Helper()
	e.procs++
	cfg := ConsumerConfig{URL: url, TransportOptions: e.consumerOptions(), Exchange: e.exchange,
		Queues: e.queues, Prefetch: e.prefetch, Out: e.out}
	raw, err := json.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &consumer{n: e.procs, ready: make(chan struct{}), done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), RoleEnv+"=consumer", ConfigEnv+"="+string(raw))
	c.cmd.Stdout = &readyWriter{ready: c.ready}
	c.cmd.Stderr = e.logf
	fmt.Fprintf(e.logf, "=== test: consumer #%d starts at +%v\n", c.n, e.ledger.Since().Round(time.Millisecond))
	if err := c.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { // owned by c; joined through done (kill, stop, cleanup)
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// waitReady waits until the consumer consumes (a hang guard of 60 s).
func (e *env) waitReady(c *consumer) {
	e.t.Helper()
	select {
	case <-c.ready:
	case <-c.done:
		e.t.Fatalf("consumer #%d exited before consuming: %v\n%s", c.n, c.err, e.logTail(40))
	case <-time.After(60 * time.Second):
		e.t.Fatalf("consumer #%d did not start consuming within 60 s\n%s", c.n, e.logTail(40))
	}
}

// kill sends SIGKILL to the consumer and reaps it.
func (e *env) kill(c *consumer) {
	e.t.Helper()
	select {
	case <-c.done:
		e.t.Errorf("consumer #%d exited by itself before it was killed: %v\n%s", c.n, c.err, e.logTail(40))
		return
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatalf("kill consumer #%d: %v", c.n, err)
	}
	<-c.done
}

// stop asks the consumer to stop (SIGTERM) and checks that it did so
// cleanly; a hang guard of 60 s ends in SIGKILL.
func (e *env) stop(c *consumer) {
	e.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
		e.t.Errorf("consumer #%d did not stop within 60 s of SIGTERM\n%s", c.n, e.logTail(40))
		return
	}
	if c.err != nil {
		e.t.Errorf("consumer #%d did not stop cleanly: %v\n%s", c.n, c.err, e.logTail(40))
	}
}

// logTail returns the last n lines of the consumers' log.
func (e *env) logTail(n int) string {
	b, err := os.ReadFile(e.logf.Name())
	if err != nil {
		return fmt.Sprintf("(consumer log unreadable: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "consumer log (" + e.logf.Name() + "), last lines:\n  " + strings.Join(lines, "\n  ")
}

// written returns how many lines the consumers have written so far.
func (e *env) written() int {
	st, err := os.Stat(e.out)
	if err != nil {
		return 0
	}
	return int(st.Size()) / (IDWidth + 1)
}

// publish publishes n numbered messages in one batch, spread over the
// queues by number, and records the outcome in the ledger.
func (e *env) publish(ctx context.Context, n int) error {
	first := e.ledger.Reserve(n)
	msgs := make([]messaging.BatchMessage, n)
	for i := range msgs {
		id := first + i
		msgs[i] = messaging.BatchMessage{Body: FormatID(id),
			Options: messaging.PublishOptions{RoutingKey: e.queues[id%len(e.queues)]}}
	}
	if err := e.prod.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
		e.ledger.Record(first, n, Uncertain)
		return err
	}
	e.ledger.Record(first, n, Confirmed)
	return nil
}

// publisher publishes on a goroutine of its own until stopped.
type publisher struct {
	cancel context.CancelFunc
	done   chan struct{}
	// gate is held by the goroutine around each publish, and by the test
	// while it wants no publish in flight (pause, resume).
	gate  sync.Mutex
	mu    sync.Mutex
	errs  int
	first error
}

// pause waits for the publish in flight, if any, and holds off the next
// ones until resume.
func (p *publisher) pause() { p.gate.Lock() }

// resume lets the publisher go on after pause.
func (p *publisher) resume() { p.gate.Unlock() }

// stop ends the publisher, waits for it, and returns the number of failed
// publishes and the first error.
func (p *publisher) stop() (int, error) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errs, p.first
}

func (p *publisher) failed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errs++
	if p.first == nil {
		p.first = err
	}
}

// startPublisher runs step every 5 ms until stopped; step returns how many
// messages to publish now. A failed publish pauses for 50 ms (Redis may be
// down).
func (e *env) startPublisher(step func(elapsed time.Duration) int) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{cancel: cancel, done: make(chan struct{})}
	go func() { // owned by p; joined by stop (and by cleanup)
		defer close(p.done)
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p.gate.Lock()
			n := step(time.Since(start))
			if n <= 0 {
				p.gate.Unlock()
				continue
			}
			// A publish is not cut short by stop: the ledger must know whether
			// Redis took it.
			pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := e.publish(pctx, n)
			pcancel()
			p.gate.Unlock()
			if err != nil {
				p.failed(err)
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}()
	e.t.Cleanup(func() { p.stop() })
	return p
}

// startTrickle publishes rate messages per second (in batches of at most
// 200 when it falls behind).
func (e *env) startTrickle(rate int) *publisher {
	sent := 0
	return e.startPublisher(func(elapsed time.Duration) int {
		n := min(int(elapsed.Seconds()*float64(rate))-sent, 200)
		sent += max(n, 0)
		return n
	})
}

// startBacklog keeps at least low messages waiting (published minus
// written), topping up by batch.
func (e *env) startBacklog(low, batch int) *publisher {
	return e.startPublisher(func(time.Duration) int {
		if e.ledger.Reserved()-e.written() < low {
			return batch
		}
		return 0
	})
}

// fill publishes n messages now, in batches of 1000.
func (e *env) fill(n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for n > 0 {
		b := min(n, 1000)
		if err := e.publish(ctx, b); err != nil {
			e.t.Fatalf("pre-filling the queues: %v", err)
		}
		n -= b
	}
}

// finish lets a last consumer run until nothing more can come, stops it,
// and checks the outcome: nothing lost, no foreign line, at most maxFaults
// × (prefetch + 1) duplicates, and none of Kombu's message keys (queues,
// unacked, unacked_index) left. The last consumer is c, one that lived
// through the faults, or if c is nil a new one on consumerURL. name labels
// the report line.
//
// "Nothing more can come" is judged from outside, as a user would: the
// message keys have been gone and nothing was written for a second, and
// either every published id has been written, or that quiet has lasted
// restoreWindow (long enough for any message a dead consumer held to be
// restored, wherever a transport keeps it). A hang guard (the visibility
// timeout, a few sweeps, time to drain what waits, and slack) ends the
// wait if the message keys never empty.
func (e *env) finish(name, consumerURL string, maxFaults int, c *consumer) Tally {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	waiting := e.ledger.Reserved() - e.written()
	guard := visibilityTimeout + 4*sweepInterval + 30*time.Second + time.Duration(max(waiting, 0))*time.Second/500
	if c == nil {
		c = e.startConsumer(consumerURL)
		e.waitReady(c)
	}
	start := time.Now()
	quietSince, lastWritten := time.Now(), e.written()
	var checked time.Time // the quiet period whose file was tallied
	for {
		time.Sleep(100 * time.Millisecond)
		w := e.written()
		if e.busy(ctx) || w != lastWritten {
			quietSince, lastWritten = time.Now(), w
		}
		quiet := time.Since(quietSince)
		if quiet >= time.Second && !checked.Equal(quietSince) {
			checked = quietSince
			if file, err := os.ReadFile(e.out); err == nil && e.ledger.Tally(file).Lost == 0 {
				break
			}
		}
		if quiet >= restoreWindow {
			break
		}
		if time.Since(start) > guard {
			e.t.Errorf("%s: Redis still held messages of the test %v after the last consumer started "+
				"(hang guard: visibility timeout %v + 4 sweeps + slack)", name, guard, visibilityTimeout)
			break
		}
	}
	drained := time.Since(start)
	e.stop(c)

	file, err := os.ReadFile(e.out)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	tally := e.ledger.Tally(file)
	e.t.Logf("%s: %s; %d faults, prefetch %d, %d queues; last consumer drained in %v",
		name, tally, maxFaults, e.prefetch, len(e.queues), drained.Round(100*time.Millisecond))

	if tally.Lost > 0 {
		e.t.Errorf("%s: %d of %d published messages were lost (never delivered):\n%s",
			name, tally.Lost, tally.Published, e.describeLost(ctx, tally.LostIDs))
	}
	if tally.Foreign > 0 {
		e.t.Errorf("%s: %d lines of the consumers' file are not ids this test published", name, tally.Foreign)
	}
	if bound := maxFaults * (e.prefetch + 1); tally.Duplicated > bound {
		e.t.Errorf("%s: %d duplicates, more than %d faults × (prefetch %d + 1) = %d: a fault may redeliver "+
			"at most the unacknowledged window; ids delivered more than once (first 20): %v",
			name, tally.Duplicated, maxFaults, e.prefetch, bound, e.idList(tally.DupIDs, 20))
	}
	if log, err := os.ReadFile(e.logf.Name()); err == nil {
		// The consumers run the library under the race detector too; a killed
		// one cannot fail by its exit status, so its log is read.
		for _, bad := range []string{"WARNING: DATA RACE", "panic:"} {
			if i := strings.Index(string(log), bad); i >= 0 {
				e.t.Errorf("%s: a consumer process logged %q:\n%s", name, bad, log[i:min(len(log), i+3000)])
			}
		}
	}
	judged, others, err := e.leftovers(ctx)
	if err != nil {
		e.t.Errorf("%s: listing the keys: %v", name, err)
	}
	if len(judged) > 0 {
		e.t.Errorf("%s: message keys left in Redis after the last consumer stopped (want none):\n%s",
			name, e.describeKeys(ctx, judged))
	}
	if len(others) > 0 {
		e.t.Logf("%s: other keys left in Redis (not judged):\n%s", name, e.describeKeys(ctx, others))
	}
	return tally
}

// idList formats the first n numbers as ids.
func (e *env) idList(ns []int, n int) []string {
	var out []string
	for _, x := range ns[:min(n, len(ns))] {
		out = append(out, FormatID(x))
	}
	return out
}

// describeLost sorts the lost messages into those gone from Redis and
// those still in it (stuck: not restored in time), and says, for the first
// 30 of each, their queue, when their publish returned and the next fault
// after it, or the key that still holds them; then the faults and the
// consumers' log.
func (e *env) describeLost(ctx context.Context, lost []int) string {
	var b strings.Builder
	judged, others, err := e.leftovers(ctx)
	if err != nil {
		fmt.Fprintf(&b, "(listing the keys: %v)\n", err)
	}
	left := append(judged, others...)
	where := e.idsInRedis(ctx, left)
	var gone, stuck []int
	for _, n := range lost {
		if _, ok := where[n]; ok {
			stuck = append(stuck, n)
		} else {
			gone = append(gone, n)
		}
	}
	fmt.Fprintf(&b, "%d are gone from Redis, %d are still in Redis (not restored in time).\n", len(gone), len(stuck))
	for _, n := range gone[:min(30, len(gone))] {
		at := e.ledger.PublishedAt(n)
		next := "none after it"
		for i, f := range e.faults {
			if f.at >= at {
				next = fmt.Sprintf("fault %d (%s) at +%v, %v later", i+1, f.what, f.at.Round(time.Millisecond),
					(f.at - at).Round(time.Millisecond))
				break
			}
		}
		fmt.Fprintf(&b, "  gone: id %s (queue %s) published at +%v; next: %s\n",
			FormatID(n), e.queues[n%len(e.queues)], at.Round(time.Millisecond), next)
	}
	if len(gone) > 30 {
		fmt.Fprintf(&b, "  ... and %d more gone\n", len(gone)-30)
	}
	for _, n := range stuck[:min(30, len(stuck))] {
		fmt.Fprintf(&b, "  stuck: id %s in %q\n", FormatID(n), strings.TrimPrefix(where[n], e.prefix))
	}
	if len(stuck) > 30 {
		fmt.Fprintf(&b, "  ... and %d more stuck\n", len(stuck)-30)
	}
	if len(left) > 0 {
		b.WriteString("Redis still holds:\n" + e.describeKeys(ctx, left))
	} else {
		b.WriteString("Redis holds no key of the test but the bindings.\n")
	}
	fmt.Fprintf(&b, "%d faults:", len(e.faults))
	for i, f := range e.faults {
		if i == 60 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " %d:+%v", i+1, f.at.Round(time.Millisecond))
	}
	b.WriteString("\n" + e.logTail(30))
	return b.String()
}

// describeKeys lists keys with their type and size, and the sweeps'
// mutexes that are held.
func (e *env) describeKeys(ctx context.Context, keys []string) string {
	var b strings.Builder
	for i, k := range keys {
		if i == 50 {
			fmt.Fprintf(&b, "  ... and %d more keys\n", len(keys)-50)
			break
		}
		typ, _ := e.rdb.Type(ctx, k).Result()
		var size int64
		switch typ {
		case "list":
			size, _ = e.rdb.LLen(ctx, k).Result()
		case "hash":
			size, _ = e.rdb.HLen(ctx, k).Result()
		case "zset":
			size, _ = e.rdb.ZCard(ctx, k).Result()
		case "set":
			size, _ = e.rdb.SCard(ctx, k).Result()
		}
		fmt.Fprintf(&b, "  %q: %s of %d\n", strings.TrimPrefix(k, e.prefix), typ, size)
	}
	for _, k := range e.layout.mutexKeys(e.queues) {
		if ttl, err := e.rdb.TTL(ctx, k).Result(); err == nil && ttl > 0 {
			fmt.Fprintf(&b, "  the sweep's %q is held, for %v more\n", strings.TrimPrefix(k, e.prefix), ttl)
		}
	}
	return b.String()
}

// bodyPattern finds the body of an envelope, in a queue's list or in an
// unacked record.
var bodyPattern = regexp.MustCompile(`"body": ?"([A-Za-z0-9+/=]*)"`)

// idsInRedis returns the ids held in the lists and hashes among keys, each
// with the key that holds it.
func (e *env) idsInRedis(ctx context.Context, keys []string) map[int]string {
	where := map[int]string{}
	for _, k := range keys {
		var vals []string
		switch typ, _ := e.rdb.Type(ctx, k).Result(); typ {
		case "list":
			vals, _ = e.rdb.LRange(ctx, k, 0, -1).Result()
		case "hash":
			vals, _ = e.rdb.HVals(ctx, k).Result()
		}
		for _, v := range vals {
			for _, m := range bodyPattern.FindAllStringSubmatch(v, -1) {
				body, err := base64.StdEncoding.DecodeString(m[1])
				if n, ok := ParseID(string(body)); err == nil && ok {
					where[n] = k
				}
			}
		}
	}
	return where
}
