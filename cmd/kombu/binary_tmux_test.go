package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxPane runs one command in a real terminal: a detached session of a
// tmux server of the test's own (its socket in the test's temp dir), read
// with capture-pane and driven with send-keys. A shell around the command
// writes its exit status to a file (it ignores SIGINT itself, so Ctrl-C
// reaches only the command, which takes SIGINT back); remain-on-exit keeps
// the screen after the command ends.
type tmuxPane struct {
	t      *testing.T
	tmux   string
	sock   string
	status string // the file the exit status is written to
}

func newTmuxPane(t *testing.T, cols, rows int, argv ...string) *tmuxPane {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("KOMBU_REQUIRE_BROKERS") == "1" {
			t.Fatal("tmux is not installed and KOMBU_REQUIRE_BROKERS=1 (apt-get install tmux)")
		}
		t.Skip("tmux is not installed (apt-get install tmux): the terminal tests need a real terminal")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &tmuxPane{t: t, tmux: tmux, sock: filepath.Join(dir, "s"), status: filepath.Join(dir, "status")}
	script := `trap "" INT; "$@"; echo $? > ` + shellQuote(p.status) + `.tmp; mv ` + shellQuote(p.status) + `.tmp ` + shellQuote(p.status)
	words := []string{"sh", "-c", script, "sh"}
	var quoted []string
	for _, a := range append(words, argv...) {
		quoted = append(quoted, shellQuote(a))
	}
	p.run("-f", conf, "new-session", "-d", "-s", "kombu", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), strings.Join(quoted, " "))
	t.Cleanup(func() { exec.Command(tmux, "-S", p.sock, "kill-server").Run() })
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (p *tmuxPane) run(args ...string) string {
	p.t.Helper()
	out, err := exec.Command(p.tmux, append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen returns what the terminal shows.
func (p *tmuxPane) screen() string { return p.run("capture-pane", "-p", "-t", "kombu") }

// waitFor polls the screen until ok holds (a minute at most: a deadline
// against a hang, not a measurement).
func (p *tmuxPane) waitFor(what string, ok func(screen string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := p.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the terminal never showed %s; it shows:\n%s", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited waits for the command to end and returns its exit status.
func (p *tmuxPane) exited() string {
	p.t.Helper()
	var status string
	p.waitFor("the command's exit", func(string) bool {
		b, err := os.ReadFile(p.status)
		status = strings.TrimSpace(string(b))
		return err == nil
	})
	return status
}

// rowOf returns the screen line of a queue in top's table.
func rowOf(screen, queue string) []string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == queue {
			return f
		}
	}
	return nil
}

// TestTopInTmux: top draws its table in a terminal, follows the queue
// live, quits on q and gives the screen back.
func TestTopInTmux(t *testing.T) {
	rt := newRedisTest(t)
	mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "ex", "--routing-key", "k", "--declare-queue", "watched", "--count", "5", "x")
	p := newTmuxPane(t, 120, 30, kombuBin, "top", "--url", rt.url, "--interval", "200ms")
	s := p.waitFor("the table with 5 ready", func(s string) bool {
		r := rowOf(s, "watched")
		return strings.Contains(s, "QUEUE") && strings.Contains(s, "(q quits)") && len(r) > 2 && r[1] == "5"
	})
	if !strings.Contains(s, "kombu top") || !strings.Contains(s, "TREND") {
		t.Errorf("top's screen:\n%s", s)
	}
	mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "ex", "--routing-key", "k", "--count", "10", "x")
	p.waitFor("15 ready after a publish", func(s string) bool {
		r := rowOf(s, "watched")
		return len(r) > 2 && r[1] == "15"
	})
	p.run("send-keys", "-t", "kombu", "q")
	if st := p.exited(); st != "0" {
		t.Errorf("top exited %s after q", st)
	}
	if s := p.screen(); strings.Contains(s, "QUEUE") {
		t.Errorf("top left its table on the terminal's main screen:\n%s", s)
	}
}

// TestTopCtrlCInTmux: Ctrl-C ends top cleanly too.
func TestTopCtrlCInTmux(t *testing.T) {
	rt := newRedisTest(t)
	p := newTmuxPane(t, 100, 20, kombuBin, "top", "--url", rt.url)
	p.waitFor("the table", func(s string) bool { return strings.Contains(s, "QUEUE") })
	p.run("send-keys", "-t", "kombu", "C-c")
	if st := p.exited(); st != "0" {
		t.Errorf("top exited %s after Ctrl-C", st)
	}
}

// TestProgressBarInTmux: on a terminal, a long publish --count and bench
// draw a bar with the rate and the time left, and clear it.
func TestProgressBarInTmux(t *testing.T) {
	rt := newRedisTest(t)
	for _, argv := range [][]string{
		{kombuBin, "publish", "--url", rt.url, "--routing-key", "bar", "--count", "1000000", "x"},
		{kombuBin, "bench", "--url", rt.url, "--messages", "1000000", "--latency", "0", "--baseline=false"},
	} {
		p := newTmuxPane(t, 120, 10, argv...)
		s := p.waitFor("a progress bar", func(s string) bool {
			return strings.Contains(s, "ETA ") && strings.Contains(s, "/s") && strings.Contains(s, "[=")
		})
		if !strings.Contains(s, "publish [") {
			t.Errorf("%s: the bar does not name its phase:\n%s", argv[1], s)
		}
		p.run("send-keys", "-t", "kombu", "C-c")
		if st := p.exited(); st != "1" {
			t.Errorf("%s exited %s after Ctrl-C, want 1 (interrupted)", argv[1], st)
		}
		if s := p.screen(); strings.Contains(s, "ETA ") {
			t.Errorf("%s left its bar on the screen:\n%s", argv[1], s)
		}
	}
}
