package sqs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

const faultRoleEnv = "KOMBU_SQS_FAULT_ROLE"

// runFaultConsumer is the child process of TestFaultConsumerKilled: it
// consumes KOMBU_SQS_FAULT_QUEUE with prefetch 10 and, for each delivery,
// appends the message's id and a newline to KOMBU_SQS_FAULT_LOG with one
// write(2) on an O_APPEND descriptor, then acknowledges it. A SIGKILL
// leaves every completed write in the file: the file is exactly the set of
// deliveries that reached the application.
func runFaultConsumer() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "fault consumer:", err); return 2 }
	f, err := os.OpenFile(os.Getenv("KOMBU_SQS_FAULT_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	cfg := configFromURL(&testing.T{}, os.Getenv("KOMBU_TEST_SQS_URL"), testOpts(map[string]any{
		"queue_name_prefix": os.Getenv("KOMBU_SQS_FAULT_PREFIX"), "visibility_timeout": 2,
	}))
	tr, err := New(cfg)
	if err != nil {
		return fail(err)
	}
	h, err := hub.New(hub.Options{})
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		return fail(err)
	}
	ch, err := conn.Channel(ctx)
	if err != nil {
		return fail(err)
	}
	ch.Qos(ctx, 10)
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: os.Getenv("KOMBU_SQS_FAULT_QUEUE")}, func(m *transport.Message) {
		time.Sleep(5 * time.Millisecond) // the application's work: unacked deliveries pile up in the window
		if _, err := f.Write(append(m.Body, '\n')); err != nil {
			fmt.Fprintln(os.Stderr, "fault consumer: write:", err)
			os.Exit(3)
		}
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		return fail(err)
	}
	fmt.Println("READY")
	if err := h.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// tally reads a consumer log: distinct ids and lines.
func tally(t *testing.T, path string) (seen map[string]int, lines int) {
	t.Helper()
	seen = map[string]int{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return seen, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		seen[sc.Text()]++
		lines++
	}
	return seen, lines
}

// TestFaultConsumerKilled publishes numbered messages, SIGKILLs the
// consumer process (prefetch 10, 5 ms of work per message) three times, at
// a random moment after it delivered its first message,
// then lets a last consumer drain the queue. With SQS semantics nothing is
// lost: what a killed consumer received and did not acknowledge comes back
// after the visibility timeout (2 s here). Duplicates are deliveries whose
// acknowledgement the kill cut off: at most the prefetch window plus one
// receive batch (10) per kill.
func TestFaultConsumerKilled(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 2})
	const q, n, kills, window = "fault.kill", 400, 3, 10
	ch := e.channel(nil, q)
	logPath := filepath.Join(t.TempDir(), "delivered.log")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), faultRoleEnv+"=consumer", "KOMBU_SQS_FAULT_LOG="+logPath,
			"KOMBU_SQS_FAULT_PREFIX="+e.prefix, "KOMBU_SQS_FAULT_QUEUE="+q, "KOMBU_TEST_SQS_URL="+e.url)
		cmd.Stderr = os.Stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "READY" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("consumer did not start: %q", line)
		}
		return cmd
	}
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() { // joined below
		defer pubWG.Done()
		for i := range n {
			if err := ch.Publish(e.ctx, &transport.Message{Body: []byte(strconv.Itoa(i))}, "", q, transport.PublishOptions{}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			if i%50 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	for range kills {
		_, before := tally(t, logPath)
		cmd := start()
		// Kill once this consumer has delivered something, at a random
		// moment after.
		for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(5 * time.Millisecond) {
			if _, l := tally(t, logPath); l > before {
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	pubWG.Wait()
	cmd := start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	var seen map[string]int
	var lines int
	for time.Now().Before(deadline) {
		if seen, lines = tally(t, logPath); len(seen) == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lost := 0
	for i := range n {
		if seen[strconv.Itoa(i)] == 0 {
			lost++
		}
	}
	dup := lines - len(seen)
	t.Logf("published %d, delivered %d, distinct %d, lost %d, duplicated %d (%d kills, prefetch %d)",
		n, lines, len(seen), lost, dup, kills, window)
	if lost != 0 {
		t.Fatalf("%d messages lost", lost)
	}
	if dup > kills*(window+maxReceive) {
		t.Errorf("%d duplicates, more than %d kills × (prefetch %d + one receive of %d)", dup, kills, window, maxReceive)
	}
}

// goaws starts a private emulator (KOMBU_TEST_SQS_GOAWS, the goaws binary
// scripts/test.sh builds) on port, or reports why it cannot. It is
// stopped at the end of the test.
type goaws struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
}

func newGoaws(t *testing.T) *goaws {
	t.Helper()
	bin := os.Getenv("KOMBU_TEST_SQS_GOAWS")
	if bin == "" {
		transporttest.Require(t, "KOMBU_TEST_SQS_GOAWS is not set: no goaws binary to start a private emulator")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	g := &goaws{t: t, bin: bin, dir: t.TempDir(), port: port}
	conf := fmt.Sprintf("Local:\n  Host: 127.0.0.1\n  Port: %d\n  AccountId: \"100010001000\"\n  QueueAttributeDefaults:\n    VisibilityTimeout: 30\n    ReceiveMessageWaitTimeSeconds: 0\n    MaximumMessageSize: 262144\n  Queues: []\n  Topics: []\n", port)
	if err := os.WriteFile(filepath.Join(g.dir, "goaws.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *goaws) url() string { return fmt.Sprintf("sqs://x:x@127.0.0.1:%d", g.port) }

func (g *goaws) start() {
	g.t.Helper()
	g.cmd = exec.Command(g.bin, "-config", filepath.Join(g.dir, "goaws.yaml"), "Local")
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	for range 200 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	g.t.Fatal("goaws did not start")
}

func (g *goaws) stop() {
	if g.cmd != nil {
		g.cmd.Process.Signal(syscall.SIGKILL)
		g.cmd.Wait()
		g.cmd = nil
	}
}

// TestFaultEmulatorRestart kills a private goaws with SIGKILL while a
// publisher and a consumer (prefetch 10) run, restarts it on the same port
// four seconds later, and checks that both recover by themselves: publishes
// fail with connection errors while it is down, the consumer's receives
// fail and are retried, the queue is created again (goaws keeps nothing
// across a restart), and every message published after the restart is
// delivered. Messages the emulator had accepted and not yet delivered when
// it died are lost with its memory (goaws has no persistence; SQS itself
// does not restart): they are counted apart.
func TestFaultEmulatorRestart(t *testing.T) {
	g := newGoaws(t)
	e := &env{t: t, url: g.url(), prefix: uniq("t") + "-", ctx: context.Background()}
	e.opts = testOpts(map[string]any{"queue_name_prefix": e.prefix})
	tr, err := New(configFromURL(t, e.url, e.opts))
	if err != nil {
		t.Fatal(err)
	}
	e.tr = tr
	e.h, err = hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.h.Run(ctx) }() // joined in Cleanup
	t.Cleanup(func() { cancel(); <-done; e.h.Close() })
	e.conn = e.dial()
	const q = "fault.restart"
	pub := e.channel(nil, q)
	cons := e.channel(e.dial())
	cons.Qos(e.ctx, 10)
	col := newCollector()
	if _, err := cons.Consume(e.ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
		col.fn(m)
		cons.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var confirmedBefore, confirmedAfter []string
	var connErrs int
	phase := 0 // 0: before the kill, 1: down, 2: restarted
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() { // joined below
		defer pubWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := strconv.Itoa(i)
			pctx, pcancel := context.WithTimeout(e.ctx, 3*time.Second)
			err := pub.Publish(pctx, &transport.Message{Body: []byte(id)}, "", q, transport.PublishOptions{})
			pcancel()
			mu.Lock()
			switch {
			case err == nil && phase == 2:
				confirmedAfter = append(confirmedAfter, id)
			case err == nil:
				confirmedBefore = append(confirmedBefore, id)
			case transport.IsConnectionError(err) || errors.Is(err, context.DeadlineExceeded):
				// Refused (after the SDK's retries), or still retrying
				// when the publish's 3 s ran out.
				connErrs++
			default:
				t.Errorf("publish %s: %v (not a connection error)", id, err)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	phase = 1
	mu.Unlock()
	g.stop()
	// Longer than the SDK's retries of one call (3 attempts with backoff),
	// so that publishes fail.
	time.Sleep(4 * time.Second)
	g.start()
	mu.Lock()
	phase = 2
	mu.Unlock()
	time.Sleep(2 * time.Second)
	close(stop)
	pubWG.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(confirmedAfter) == 0 {
		t.Fatal("no publish succeeded after the restart")
	}
	if connErrs == 0 {
		t.Error("no publish failed while the emulator was down")
	}
	want := map[string]bool{}
	for _, id := range confirmedAfter {
		want[id] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := map[string]int{}
		col.mu.Lock()
		for _, m := range col.msgs {
			got[string(m.Body)]++
		}
		col.mu.Unlock()
		lostAfter := 0
		for id := range want {
			if got[id] == 0 {
				lostAfter++
			}
		}
		if lostAfter == 0 || time.Now().After(deadline) {
			lostWithEmulator := 0
			for _, id := range confirmedBefore {
				if got[id] == 0 {
					lostWithEmulator++
				}
			}
			dup := 0
			for _, n := range got {
				dup += n - 1
			}
			t.Logf("published %d before the kill, %d after the restart; %d publishes failed while down; "+
				"lost after the restart %d; lost with the emulator's memory %d; duplicated %d",
				len(confirmedBefore), len(confirmedAfter), connErrs, lostAfter, lostWithEmulator, dup)
			if lostAfter != 0 {
				t.Fatalf("%d messages published after the restart were never delivered", lostAfter)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
