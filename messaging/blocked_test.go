package messaging_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// TestAMQPBlockedHooks raises a memory alarm on a private RabbitMQ node:
// a publish blocks, Connection.OnBlocked runs with the broker's reason; once the alarm clears, OnUnblocked runs and the publish is
// confirmed.
func TestAMQPBlockedHooks(t *testing.T) {
	ctl := os.Getenv("KOMBU_TEST_RABBIT_CTL")
	if ctl == "" {
		transporttest.Require(t, "KOMBU_TEST_RABBIT_CTL is not set: no private RabbitMQ node can be started")
	}
	dir, err := os.MkdirTemp("", "kombu-blocked-")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ctl, args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("%s %s: %v\n%s", ctl, strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		if err := exec.Command(ctl, "rabbit-stop", dir).Run(); err == nil {
			os.RemoveAll(dir)
		}
	})
	url := run("rabbit-start", dir)

	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := brokerOptions()
	opts.Hub = h
	opts.TransportOptions = map[string]any{"confirm_publish": true}
	conn, err := messaging.NewConnection(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.Run(ctx) }()
	defer func() {
		conn.Close()
		cancel()
		<-ran
		h.Close()
	}()
	type event struct {
		blocked bool
		reason  string
	}
	events := make(chan event, 4)
	conn.OnBlocked(func(reason string) { events <- event{true, reason} })
	conn.OnUnblocked(func() { events <- event{false, ""} })

	q := messaging.Queue{Name: "kombu-go-blocked-" + messaging.NewUUID()[:8], AutoDelete: true}
	prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Serializer: "json"})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	publish := func() error {
		return prod.Publish(pctx, "m", messaging.PublishOptions{RoutingKey: q.Name, Declare: []messaging.Declaration{q}})
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}

	run("rabbit-ctl", dir, "set_vm_memory_high_watermark", "0.0000001")
	alarmOn := true
	defer func() {
		if alarmOn {
			exec.Command(ctl, "rabbit-ctl", dir, "set_vm_memory_high_watermark", "0.4").Run()
		}
	}()
	published := make(chan error, 1)
	go func() { published <- publish() }()
	select {
	case ev := <-events:
		if !ev.blocked || !strings.Contains(ev.reason, "memory") {
			t.Fatalf("first event %+v, want blocked for low memory", ev)
		}
		t.Logf("blocked: %q", ev.reason)
	case err := <-published:
		t.Fatalf("the publish completed during the alarm (err %v) and no block was reported", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no blocked notification within 20 s of the alarm")
	}
	select {
	case err := <-published:
		t.Fatalf("the publish completed while the connection is blocked: %v", err)
	case <-time.After(300 * time.Millisecond):
	}

	run("rabbit-ctl", dir, "set_vm_memory_high_watermark", "0.4")
	alarmOn = false
	select {
	case ev := <-events:
		if ev.blocked {
			t.Fatalf("second event %+v, want unblocked", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no unblocked notification within 20 s of the alarm's end")
	}
	if err := <-published; err != nil {
		t.Fatalf("the blocked publish: %v", err)
	}
}
