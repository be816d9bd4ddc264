package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// runCLI runs the command line in this process, with an empty
// environment and no terminal.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, stdoutFd: -1, stderrFd: -1}
	code = run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"nope"},
		{"bench", "--bogus"},
		{"bench", "--messages", "0"},
		{"bench", "--scaling-rounds", "3"},
		{"bench", "--queues", "5", "--messages", "2", "--scaling-rounds", "3"},
		{"bench", "--url", "redis+cluster://127.0.0.1:1", "--cluster-scaling-rounds", "2"},
		{"bench", "--url", "redis+cluster://127.0.0.1:1", "--queues", "3", "--messages", "5", "--cluster-scaling-rounds", "2"},
		{"bench", "--url", "redis://127.0.0.1:1", "--queues", "3", "--cluster-scaling-rounds", "2"},
		{"bench", "--cluster-scaling-rounds", "-1"},
		{"bench", "--cluster-publishers", "0"},
		{"publish"},
		{"publish", "--header", "novalue", "x"},
		{"publish", "--exchange", "e", "--exchange-type", "weird", "x"},
		{"consume"},
		{"consume", "--queue", "q", "--requeue", "--reject"},
		{"poller-bench", "--fds", "20000"},
		{"queues"},
		{"purge"},
	}
	for _, args := range cases {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("kombu %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	if code, stdout, _ := runCLI(t, "bench", "--help"); code != 0 || !strings.Contains(stdout, "--messages") {
		t.Errorf("bench --help: exit %d, stdout %q", code, stdout)
	}
	if code, _, _ := runCLI(t, "publish", "--url", "nosuch://x", "body"); code != 1 {
		t.Errorf("unknown scheme: exit %d, want 1", code)
	}
}

// TestPublishConsumeJSON publishes with the CLI and consumes with the CLI on
// the process-wide memory broker, checking the --json line contract.
func TestPublishConsumeJSON(t *testing.T) {
	code, _, stderr := runCLI(t, "publish", "--url", "memory://cli-test", "--exchange", "media", "--exchange-type", "direct",
		"--routing-key", "video", "--declare-queue", "video", "--serializer", "json", "--priority", "3",
		"--header", "h1=v1", "--count", "2", `{"name": "/tmp/lolcat1.avi", "size": 1301013}`)
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	// The queue exists (publish declared it): consume declares nothing.
	code, stdout, stderr := runCLI(t, "consume", "--url", "memory://cli-test", "--queue", "video",
		"--count", "2", "--timeout", "2s", "--json")
	if code != 0 {
		t.Fatalf("consume: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), stdout)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"body", "content_type", "content_encoding", "exchange", "routing_key", "priority", "redelivered", "headers", "delivery_tag"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line lacks %q: %s", k, lines[0])
		}
	}
	body, _ := m["body"].(map[string]any)
	if body["name"] != "/tmp/lolcat1.avi" || body["size"] != float64(1301013) {
		t.Errorf("body = %v", m["body"])
	}
	if m["exchange"] != "media" || m["routing_key"] != "video" || m["content_type"] != "application/json" || m["priority"] != float64(3) {
		t.Errorf("metadata = %v", m)
	}
	if h, _ := m["headers"].(map[string]any); h["h1"] != "v1" {
		t.Errorf("headers = %v", m["headers"])
	}
	// Acked: nothing left.
	code, stdout, _ = runCLI(t, "purge", "--url", "memory://cli-test", "video")
	if code != 0 || !strings.Contains(stdout, "purged 0") {
		t.Errorf("purge after consume: exit %d, %q", code, stdout)
	}
}

func TestBenchJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "bench", "--messages", "2000", "--latency", "50", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	for _, k := range []string{"transport", "messages", "publish_per_s", "consume_per_s", "p50_us", "p99_us"} {
		if _, ok := res[k]; !ok {
			t.Errorf("bench --json lacks %q", k)
		}
	}
	if res["transport"] != "memory" || res["messages"] != float64(2000) {
		t.Errorf("bench --json = %v", res)
	}
	if v, _ := res["consume_per_s"].(float64); v <= 0 {
		t.Errorf("consume_per_s = %v", res["consume_per_s"])
	}
}

func TestPollerBenchJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "poller-bench", "--fds", "1,10", "--events", "500", "--reps", "1", "--wake-iters", "20", "--json")
	if code != 0 {
		t.Fatalf("poller-bench: exit %d: %s", code, stderr)
	}
	var res struct {
		Results []struct {
			Impl           string   `json:"impl"`
			Fds            int      `json:"fds"`
			NsPerEvent     *float64 `json:"ns_per_event"`
			AllocsPerEvent *float64 `json:"allocs_per_event"`
		} `json:"results"`
		WakeupNs map[string]float64 `json:"wakeup_ns"`
		TimersNs map[string]float64 `json:"timers_ns"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 6 {
		t.Fatalf("results = %+v", res.Results)
	}
	impls := map[string]bool{}
	for _, r := range res.Results {
		impls[r.Impl] = true
		if r.NsPerEvent == nil || r.AllocsPerEvent == nil || *r.NsPerEvent <= 0 {
			t.Errorf("result %+v", r)
		}
	}
	for _, want := range []string{"hub", "raw-epoll", "goroutines"} {
		if !impls[want] {
			t.Errorf("no %q result", want)
		}
	}
	if res.WakeupNs["hub"] <= 0 || len(res.TimersNs) == 0 {
		t.Errorf("wakeup_ns=%v timers_ns=%v", res.WakeupNs, res.TimersNs)
	}
}

// --scaling-rounds adds the alternating-rounds comparison to the report
// and to --json (on the memory transport here; Redis in the README).
func TestBenchScaling(t *testing.T) {
	code, stdout, stderr := runCLI(t, "bench", "--messages", "3000", "--latency", "0", "--queues", "20",
		"--idle", "0", "--scaling-rounds", "3", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, stderr)
	}
	var res struct {
		Scaling *struct {
			Rounds           int       `json:"rounds"`
			MessagesPerRound int       `json:"messages_per_round"`
			Queues           int       `json:"queues"`
			One              float64   `json:"one_queue_per_s"`
			Many             float64   `json:"many_queues_per_s"`
			Ratio            float64   `json:"ratio"`
			RoundRatios      []float64 `json:"round_ratios"`
			Median           float64   `json:"median_round_ratio"`
		} `json:"queue_scaling"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	sc := res.Scaling
	if sc == nil {
		t.Fatalf("bench --json lacks queue_scaling: %s", stdout)
	}
	if sc.Rounds != 3 || sc.MessagesPerRound != 1000 || sc.Queues != 20 || len(sc.RoundRatios) != 3 {
		t.Errorf("queue_scaling = %+v", *sc)
	}
	if sc.One <= 0 || sc.Many <= 0 || sc.Ratio <= 0 || sc.Median <= 0 {
		t.Errorf("queue_scaling rates = %+v", *sc)
	}
	if want := sc.Many / sc.One; sc.Ratio < want*0.999 || sc.Ratio > want*1.001 {
		t.Errorf("ratio %v, want many/one = %v", sc.Ratio, want)
	}
	code, stdout, _ = runCLI(t, "bench", "--messages", "600", "--latency", "0", "--queues", "3", "--idle", "0", "--scaling-rounds", "2")
	if code != 0 || !strings.Contains(stdout, "queue scaling, 2 alternating rounds of 300 messages") || !strings.Contains(stdout, "3 queues") {
		t.Errorf("bench report: exit %d:\n%s", code, stdout)
	}
}
