package filesystem

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// testDir returns a new empty folder, removed after the test: under
// KOMBU_TEST_FILESYSTEM_DIR when set (scripts/test.sh sets it; point it
// at another file system to test there), else t.TempDir().
func testDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("KOMBU_TEST_FILESYSTEM_DIR")
	if base == "" {
		return t.TempDir()
	}
	d, err := os.MkdirTemp(base, "fs-test-")
	if err != nil {
		t.Fatalf("KOMBU_TEST_FILESYSTEM_DIR: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// runHub returns a hub driven by a goroutine that the test's cleanup
// stops and joins (after the connections registered later are closed:
// cleanups run last first).
func runHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := h.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub.Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		h.Close()
	})
	return h
}

// dial opens a connection with folders in and out, closed by the
// test's cleanup.
func dial(t *testing.T, h *hub.Hub, in, out string, extra map[string]any) *Conn {
	t.Helper()
	c, err := newTransport(t, in, out, extra).Dial(context.Background(), h)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c.(*Conn)
}

// newTransport returns a transport over the folders, with extra options.
func newTransport(t *testing.T, in, out string, extra map[string]any) *Transport {
	t.Helper()
	opts := map[string]any{"data_folder_in": in, "data_folder_out": out}
	for k, v := range extra {
		opts[k] = v
	}
	tr, err := New(transport.Config{Scheme: "filesystem", Options: opts})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tr
}

func mustChannel(t *testing.T, c *Conn) transport.Channel {
	t.Helper()
	ch, err := c.Channel(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// collect consumes queue on ch and returns a function that waits for n
// deliveries (acking each when ack is set).
func collect(t *testing.T, ch transport.Channel, queue string, ack bool) func(n int) []*transport.Message {
	t.Helper()
	got := make(chan *transport.Message, 10000)
	_, err := ch.Consume(context.Background(), transport.ConsumeOptions{Queue: queue}, func(m *transport.Message) {
		if ack {
			ch.Ack(m.DeliveryInfo.DeliveryTag)
		}
		got <- m
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(n int) []*transport.Message {
		t.Helper()
		var out []*transport.Message
		deadline := time.After(20 * time.Second)
		for len(out) < n {
			select {
			case m := <-got:
				out = append(out, m)
			case <-deadline:
				t.Fatalf("got %d of %d messages", len(out), n)
			}
		}
		return out
	}
}

// python returns the interpreter with Kombu (KOMBU_TEST_PYTHON, else
// /usr/bin/python3 when it imports kombu), or skips (fails under
// KOMBU_REQUIRE_BROKERS=1).
func python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" && exec.Command("/usr/bin/python3", "-c", "import kombu.transport.filesystem").Run() == nil {
		py = "/usr/bin/python3"
	}
	if py == "" {
		transporttest.Require(t, "no Python with Kombu: set KOMBU_TEST_PYTHON (apt-get install python3-kombu)")
	}
	return py
}

// peer runs testdata/kombu_fs_peer.py with args and returns its stdout.
func peer(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := pyCommand(t, args...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// pyCommand is the Python peer with args. Kombu's _get moves a file to
// tempfile.gettempdir() before reading it: TMPDIR puts that on the test
// folders' file system, so that the move is a rename there too.
func pyCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(python(t), append([]string{"testdata/kombu_fs_peer.py"}, args...)...)
	if base := os.Getenv("KOMBU_TEST_FILESYSTEM_DIR"); base != "" {
		cmd.Env = append(os.Environ(), "TMPDIR="+base)
	}
	return cmd
}

// lockedBuffer is a bytes buffer safe for the writes of a child's pipe
// copier and the test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
