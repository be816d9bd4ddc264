package main

import (
	"strings"
	"testing"
)

// TestBinaryFilesystem: publish, queues (named and listed), consume and
// bench with a filesystem:// URL on a folder of the test's own.
func TestBinaryFilesystem(t *testing.T) {
	dir := t.TempDir()
	url := "filesystem://?data_folder_in=" + dir + "&data_folder_out=" + dir
	mustRun(t, nil, "publish", "--url", url, "--routing-key", "fsq", "--count", "3", "hello")
	mustRun(t, nil, "publish", "--url", url, "--routing-key", "other.q", "hi")

	type queues struct {
		Transport string `json:"transport"`
		Queues    []struct {
			Name     string `json:"name"`
			Messages int64  `json:"messages"`
			Unacked  *int64 `json:"unacked"`
		} `json:"queues"`
	}
	all := decodeJSON[queues](t, mustRun(t, nil, "queues", "--url", url, "--json").stdout)
	if all.Transport != "filesystem" || len(all.Queues) != 2 || all.Queues[0].Name != "fsq" ||
		all.Queues[0].Messages != 3 || all.Queues[1].Name != "other.q" || all.Queues[1].Messages != 1 {
		t.Fatalf("queues: %+v", all)
	}
	if out := mustRun(t, nil, "queues", "--url", url, "fsq").stdout; !strings.Contains(out, "fsq") || !strings.Contains(out, "3") {
		t.Errorf("queues fsq:\n%s", out)
	}
	r := mustRun(t, nil, "consume", "--url", url, "--queue", "fsq", "--count", "3", "--timeout", "5s", "--json")
	if lines := jsonLines[map[string]any](t, r.stdout); len(lines) != 3 {
		t.Errorf("consumed %d messages, want 3:\n%s", len(lines), r)
	}
	after := decodeJSON[queues](t, mustRun(t, nil, "queues", "--url", url, "--json").stdout)
	if len(after.Queues) != 1 || after.Queues[0].Name != "other.q" {
		t.Errorf("after consuming: %+v", after)
	}
	b := mustRun(t, nil, "bench", "--url", url, "--messages", "300", "--latency", "20", "--quiet", "--json")
	if !strings.Contains(b.stdout, `"transport":"filesystem"`) {
		t.Errorf("bench:\n%s", b)
	}
}
