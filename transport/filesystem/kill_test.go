package filesystem

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// The consumer process of the kill tests: this test binary re-executed
// with roleEnv=consumer (see TestMain). It consumes queue killQueue from
// the folder in dirEnv with prefetch prefetchEnv; for each delivery it
// appends the body (an id) and "\n" to the file in outEnv with one
// write(2) on an O_APPEND descriptor, and only then acknowledges it. So
// the file is exactly the set of deliveries that reached the application,
// whatever moment a SIGKILL hits. It prints readyLine once it consumes and
// exits cleanly (closing the connection) on SIGTERM.
const (
	roleEnv     = "KOMBU_FS_ROLE"
	dirEnv      = "KOMBU_FS_DIR"
	outEnv      = "KOMBU_FS_OUT"
	prefetchEnv = "KOMBU_FS_PREFETCH"
	// workEnv is how long the consumer's callback works on each message
	// (a duration), so that kills land while messages are in flight.
	workEnv   = "KOMBU_FS_WORK"
	killQueue = "killq"
	readyLine = "consuming"
)

func runConsumerProcess() int {
	if err := consumerProcess(); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		return 1
	}
	return 0
}

func consumerProcess() (err error) {
	dir := os.Getenv(dirEnv)
	prefetch, _ := strconv.Atoi(os.Getenv(prefetchEnv))
	work, _ := time.ParseDuration(os.Getenv(workEnv))
	out, err := os.OpenFile(os.Getenv(outEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	h, err := hub.New(hub.Options{})
	if err != nil {
		return err
	}
	defer h.Close()
	tr, err := NewWithOptions(Options{DataFolderIn: dir, DataFolderOut: dir, PollingInterval: time.Second,
		Watch: true, RecoverInterval: time.Second})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	runDone := make(chan error, 1)
	go func() { runDone <- h.Run(ctx) }()
	defer func() {
		stop()
		if e := <-runDone; e != nil && !errors.Is(e, context.Canceled) {
			err = errors.Join(err, e)
		}
	}()
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close()) }()
	ch, err := conn.Channel(ctx)
	if err != nil {
		return err
	}
	if err := ch.Qos(ctx, prefetch); err != nil {
		return err
	}
	failed := make(chan error, 1)
	_, err = ch.Consume(ctx, transport.ConsumeOptions{Queue: killQueue}, func(m *transport.Message) {
		time.Sleep(work) // the application's work: a test consumer may block its own hub
		if _, err := out.Write(append(m.Body, '\n')); err != nil {
			select {
			case failed <- err:
			default:
			}
			return
		}
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	})
	if err != nil {
		return err
	}
	fmt.Println(readyLine)
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// consumerProc is a running consumer process.
type consumerProc struct {
	cmd   *exec.Cmd
	ready chan struct{}
	errb  *lockedBuffer
}

func startConsumer(t *testing.T, dir, out string, prefetch int) *consumerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=consumer", dirEnv+"="+dir, outEnv+"="+out,
		prefetchEnv+"="+strconv.Itoa(prefetch), workEnv+"=1ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &consumerProc{cmd: cmd, ready: make(chan struct{}), errb: &lockedBuffer{}}
	cmd.Stderr = p.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends when the process's stdout closes (it exits)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == readyLine {
				close(p.ready)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-p.ready:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("consumer not ready: %s", p.errb.String())
	}
	return p
}

func (p *consumerProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *consumerProc) term(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("consumer exit: %v\n%s", err, p.errb.String())
	}
}

// tally reads the ids file: how many lines, and how many times each id.
func tally(t *testing.T, path string) (lines int, seen map[string]int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	seen = map[string]int{}
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			lines++
			seen[l]++
		}
	}
	return lines, seen
}

// publishIDs publishes ids from..to-1 to killQueue.
func publishIDs(t *testing.T, ch transport.Channel, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		m := &transport.Message{Body: []byte(strconv.Itoa(i)), ContentType: "text/plain", ContentEncoding: "utf-8"}
		if err := ch.Publish(context.Background(), m, "", killQueue, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKillConsumer kills the consumer process with SIGKILL at random
// moments (20–300 ms after it started consuming) while messages are
// published, restarting it each time; then a last consumer drains the
// queue and stops cleanly. With Kombu's semantics a killed consumer loses
// every message it had taken and not acknowledged; here its claims are
// given back by the next connection's recovery pass, so nothing may be
// lost, and a kill may redeliver at most the killed consumer's window
// (prefetch, plus the message being written). KOMBU_FS_KILLS sets the
// number of kills per case (default 4).
func TestKillConsumer(t *testing.T) {
	kills := 4
	if s := os.Getenv("KOMBU_FS_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	for _, prefetch := range []int{1, 50} {
		t.Run(fmt.Sprintf("prefetch%d", prefetch), func(t *testing.T) {
			killCase(t, kills, prefetch)
		})
	}
}

func killCase(t *testing.T, kills, prefetch int) {
	dir := testDir(t)
	out := filepath.Join(testDir(t), "ids")
	h := runHub(t)
	pubConn := dial(t, h, dir, dir, nil)
	pub := mustChannel(t, pubConn)
	const perRound = 300
	published := 0
	publishIDs(t, pub, 0, 2*perRound) // a backlog
	published = 2 * perRound
	for k := 0; k < kills; k++ {
		c := startConsumer(t, dir, out, prefetch)
		publishIDs(t, pub, published, published+perRound) // more while it runs
		published += perRound
		time.Sleep(20*time.Millisecond + rand.N(281*time.Millisecond))
		c.kill(t)
	}
	before, _ := tally(t, out)
	last := startConsumer(t, dir, out, prefetch)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, seen := tally(t, out)
		if len(seen) >= published || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	last.term(t)
	lines, seen := tally(t, out)
	lost := 0
	var lostIDs []int
	for i := range published {
		if seen[strconv.Itoa(i)] == 0 {
			lost++
			if len(lostIDs) < 20 {
				lostIDs = append(lostIDs, i)
			}
		}
	}
	dups := lines - len(seen)
	t.Logf("published %d, delivered %d (%d before the last consumer), lost %d, duplicated %d, kills %d, prefetch %d",
		published, lines, before, lost, dups, kills, prefetch)
	if lost != 0 {
		t.Errorf("lost %d messages, e.g. %v", lost, lostIDs)
	}
	if max := kills * (prefetch + 1); dups > max {
		t.Errorf("duplicated %d, more than kills × (prefetch + 1) = %d", dups, max)
	}
	if left := msgFiles(t, dir); len(left) != 0 {
		t.Errorf("%d message files left", len(left))
	}
	claims, _ := filepath.Glob(filepath.Join(dir, ourDir, "*", "*.msg"))
	if len(claims) != 0 {
		t.Errorf("claims left: %v", claims)
	}
}

// TestKillKombuConsumer shows Kombu's own semantics on the same folder: a
// Kombu consumer that has taken messages without acknowledging them is
// killed with SIGKILL, and those messages are gone (Kombu's _get deleted
// their files when it took them). Everything else is still consumed here.
// The expected loss is exactly what the Kombu consumer had taken.
func TestKillKombuConsumer(t *testing.T) {
	dir := testDir(t)
	python(t)
	const n, taken = 20, 5
	h := runHub(t)
	c := dial(t, h, dir, dir, nil)
	ch := mustChannel(t, c)
	publishIDs(t, ch, 0, n)
	cmd := pyCommand(t, "consume", dir, dir, killQueue, strconv.Itoa(taken), "20", "hang")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	pyTook := 0
	for sc.Scan() && sc.Text() != "HUNG" {
		pyTook++
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	left := n - pyTook
	got := collect(t, ch, killQueue, true)(left)
	time.Sleep(200 * time.Millisecond) // nothing more may come
	more, _ := ch.Get(context.Background(), killQueue, true)
	t.Logf("published %d, Kombu took %d and was killed, Go consumed %d, lost %d (Kombu's semantics)", n, pyTook, len(got), n-len(got))
	if pyTook != taken || more != nil {
		t.Errorf("Kombu took %d (want %d); a message after the drain: %v", pyTook, taken, more)
	}
}
