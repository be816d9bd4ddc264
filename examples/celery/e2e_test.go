package celeryexample_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kombu-go/kombu/celery"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// The example worker and client, built and run as programs against Redis:
// the client prints the results of tasks.add and tasks.echo, reports
// tasks.fail's exception and traceback, and a task running when the worker
// gets SIGTERM finishes before the worker exits (status 0).
func TestExamplesEndToEnd(t *testing.T) {
	url := transporttest.BrokerURL(t, "KOMBU_TEST_REDIS_URL")
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir, "./worker", "./client")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	queue := "kgo-example-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	defer deleteQueue(url, queue)
	worker := exec.Command(filepath.Join(dir, "worker"), "--broker", url, "--backend", url, "--queue", queue,
		"--hostname", queue+"@test", "--concurrency", "2")
	logPath := filepath.Join(dir, "worker.log")
	wlog, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer wlog.Close()
	worker.Stdout, worker.Stderr = wlog, wlog
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	defer func() {
		if worker.ProcessState == nil {
			worker.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker output:\n%s", b)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := func(args ...string) (string, string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "client"),
			append([]string{"--broker", url, "--backend", url, "--queue", queue, "--timeout", "20s"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return strings.TrimSpace(stdout.String()), stderr.String(), err
	}
	if out, errOut, err := client("tasks.add", "[2, 3, 4.5]"); err != nil || out != "9.5" {
		t.Errorf("client tasks.add [2, 3, 4.5]: %q, %v %s", out, err, errOut)
	}
	if out, errOut, err := client("tasks.echo", `["é"]`, `{"k": [1, null]}`); err != nil ||
		out != `{"args":["é"],"kwargs":{"k":[1,null]}}` {
		t.Errorf("client tasks.echo: %q, %v %s", out, err, errOut)
	}
	if _, errOut, err := client("tasks.fail", `["bad input"]`); err == nil ||
		!strings.Contains(errOut, "builtins.ValueError: bad input") || !strings.Contains(errOut, "Traceback") {
		t.Errorf("client tasks.fail: %v, stderr %q", err, errOut)
	}
	// SIGTERM while tasks.sleep runs: the task finishes, the worker exits 0.
	type res struct {
		out string
		err error
	}
	slept := make(chan res, 1)
	go func() {
		out, _, err := client("tasks.sleep", "[2]")
		slept <- res{out, err}
	}()
	time.Sleep(time.Second) // the client has sent it, the worker runs it
	worker.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("worker did not exit after SIGTERM")
	}
	if r := <-slept; r.err != nil || r.out != "2" {
		t.Errorf("tasks.sleep running at SIGTERM: %q, %v", r.out, r.err)
	}
}

// deleteQueue removes the test's queue and exchange from the shared broker.
func deleteQueue(url, name string) {
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	celery.DeleteQueue(ctx, conn, name)
}
