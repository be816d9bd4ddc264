package sqla

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
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
)

// viaProxy returns raw with its host and port replaced by the proxy's.
func viaProxy(t *testing.T, raw string, p *proxy) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.addr().String()
	return u.String()
}

func dbAddr(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
		if strings.Contains(u.Scheme, "mysql") {
			port = "3306"
		}
	}
	return u.Hostname() + ":" + port
}

// TestFaultConnectionCut: a consumer reaches the database through a proxy
// that cuts every connection (LISTEN, pool, executor) and refuses new ones
// for 300 ms, four times while messages are published. Every message
// arrives (claims whose reply was lost come back through the visibility
// sweep), and every row is deleted at the end: the acknowledgements that
// met a cut connection were retried.
func TestFaultConnectionCut(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		pub := newTransport(t, raw, nil)
		p, err := newProxy(dbAddr(t, raw))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.close)
		cons, err := New(configFromURL(t, viaProxy(t, raw, p), map[string]any{
			"queue_tablename": pub.o.QueueTable, "message_tablename": pub.o.MessageTable,
			"visibility_timeout": 2, "polling_interval": 0.2, "connect_timeout": 2,
		}))
		if err != nil {
			t.Fatal(err)
		}
		h := runHub(t)
		pc, pch := dial(t, pub, h)
		_, cch := dial(t, cons, h)
		ctx := context.Background()
		q := uniq("cut-")
		if _, err := pch.DeclareQueue(ctx, transport.Queue{Name: q}); err != nil {
			t.Fatal(err)
		}
		if err := cch.Qos(ctx, 10); err != nil {
			t.Fatal(err)
		}
		got := collect(t, cch, q, false)

		const n = 300
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := pch.Publish(ctx, jsonMsg(i), "", q, transport.PublishOptions{}); err != nil {
					t.Errorf("publish %d: %v", i, err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		seen := map[string]int{}
		faults := 0
		deadline := time.Now().Add(60 * time.Second)
		nextFault := time.Now().Add(150 * time.Millisecond)
		for len(seen) < n && time.Now().Before(deadline) {
			if faults < 4 && time.Now().After(nextFault) {
				cut := p.cut(true)
				time.Sleep(300 * time.Millisecond)
				p.setDown(false)
				faults++
				t.Logf("fault %d: cut %d connections", faults, cut)
				nextFault = time.Now().Add(250 * time.Millisecond)
			}
			select {
			case m := <-got:
				seen[string(m.Body)]++
				if err := cch.Ack(m.DeliveryInfo.DeliveryTag); err != nil {
					t.Fatal(err)
				}
			case <-time.After(50 * time.Millisecond):
			}
		}
		wg.Wait()
		dups := 0
		for _, c := range seen {
			dups += c - 1
		}
		t.Logf("published %d, delivered %d distinct, %d duplicates, %d faults", n, len(seen), dups, faults)
		if len(seen) != n {
			t.Fatalf("lost %d of %d messages", n-len(seen), n)
		}
		waitRows(t, pc, q, 0, 0)
	})
}

// runConsumer is the helper process of TestFaultKilledConsumer: it
// consumes KOMBU_SQLA_QUEUE with prefetch 20 and, for each message,
// appends its body and a newline to KOMBU_SQLA_OUT with one write, then
// acknowledges it. It runs until it is killed.
func runConsumer() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "consumer:", err); return 1 }
	out, err := os.OpenFile(os.Getenv("KOMBU_SQLA_OUT"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	u, err := url.Parse(os.Getenv("KOMBU_SQLA_URL"))
	if err != nil {
		return fail(err)
	}
	cfg := transport.Config{Scheme: u.Scheme, Hostname: u.Hostname(), VirtualHost: u.Path, UserID: u.User.Username(),
		Options: map[string]any{"queue_tablename": os.Getenv("KOMBU_SQLA_QT"), "message_tablename": os.Getenv("KOMBU_SQLA_MT")}}
	cfg.Port, _ = strconv.Atoi(u.Port())
	tr, err := New(cfg)
	if err != nil {
		return fail(err)
	}
	h, err := hub.New(hub.Options{})
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	c, err := tr.Dial(ctx, h)
	if err != nil {
		return fail(err)
	}
	ch, err := c.Channel(ctx)
	if err != nil {
		return fail(err)
	}
	if err := ch.Qos(ctx, 20); err != nil {
		return fail(err)
	}
	if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: os.Getenv("KOMBU_SQLA_QUEUE")}, func(m *transport.Message) {
		out.Write(append(append([]byte(nil), m.Body...), '\n'))
		// A slow handler (blocking the hub on purpose, in this helper
		// only), so that the kill finds a full window of claimed rows.
		time.Sleep(2 * time.Millisecond)
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	}); err != nil {
		return fail(err)
	}
	return fail(h.Run(ctx))
}

// rowsLeft counts the queue's rows, visible or not.
func rowsLeft(t *testing.T, c *Conn, queue string) int {
	t.Helper()
	qs, err := c.Queues(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range qs {
		if s.Name == queue {
			return s.Ready + s.Invisible
		}
	}
	return 0
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestFaultKilledConsumer: a consumer process is killed with SIGKILL while
// it consumes a backlog. The rows it had claimed stay invisible, as with
// Kombu (which never restores them); the visibility sweep of the next
// consumer (visibility_timeout=1) makes them visible again, and every
// message reaches the application; duplicates are bounded by the dead
// consumer's prefetch window.
func TestFaultKilledConsumer(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		f := newFixture(t, raw, "kill-", nil)
		pub, pc, pch, q := f.tr, f.c, f.ch, f.q
		h := runHub(t)
		ctx := context.Background()
		const n = 200
		for i := range n {
			if err := pch.Publish(ctx, jsonMsg(i), "", q, transport.PublishOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		outPath := filepath.Join(t.TempDir(), "delivered")
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "KOMBU_SQLA_ROLE=consumer", "KOMBU_SQLA_URL="+raw, "KOMBU_SQLA_QUEUE="+q,
			"KOMBU_SQLA_OUT="+outPath, "KOMBU_SQLA_QT="+pub.o.QueueTable, "KOMBU_SQLA_MT="+pub.o.MessageTable)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(readLines(t, outPath)) < 30 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		first := readLines(t, outPath)
		if len(first) < 30 {
			t.Fatalf("the consumer process wrote %d lines before it was killed", len(first))
		}
		qs, err := pc.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		invisible := 0
		for _, s := range qs {
			if s.Name == q {
				invisible = s.Invisible
				t.Logf("after SIGKILL: %d written, %d ready, %d invisible rows (the dead consumer's window)", len(first), s.Ready, s.Invisible)
			}
		}
		if invisible == 0 {
			t.Fatal("the kill left no claimed row: the test did not test a crash mid-window")
		}
		// The next consumer: its sweep restores the dead one's rows.
		cons, err := New(configFromURL(t, raw, map[string]any{
			"queue_tablename": pub.o.QueueTable, "message_tablename": pub.o.MessageTable,
			"visibility_timeout": 1, "polling_interval": 0.2,
		}))
		if err != nil {
			t.Fatal(err)
		}
		_, cch := dial(t, cons, h)
		got := collect(t, cch, q, false)
		seen := map[string]int{}
		for _, l := range first {
			seen[l]++
		}
		// Until every message was seen and no row is left: the rows the
		// dead consumer had written but not acknowledged come back too.
		deadline = time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case m := <-got:
				seen[string(m.Body)]++
				cch.Ack(m.DeliveryInfo.DeliveryTag)
				continue
			case <-time.After(100 * time.Millisecond):
			}
			if len(seen) == n && rowsLeft(t, pc, q) == 0 {
				break
			}
		}
		dups := 0
		for _, c := range seen {
			dups += c - 1
		}
		t.Logf("published %d, delivered %d distinct, %d duplicates", n, len(seen), dups)
		if len(seen) != n {
			t.Fatalf("lost %d of %d messages", n-len(seen), n)
		}
		if dups > 21 {
			t.Fatalf("%d duplicates: more than the dead consumer's prefetch window", dups)
		}
		waitRows(t, pc, q, 0, 0)
	})
}
