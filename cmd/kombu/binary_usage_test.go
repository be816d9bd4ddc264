package main

import (
	"strings"
	"testing"
)

// TestBinaryExitCodes: 0 success (and --help), 1 failure, 2 usage, with
// the message on stderr and nothing on stdout for errors.
func TestBinaryExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		env  []string
		code int
		// stderrHas must appear on stderr.
		stderrHas string
	}{
		{nil, nil, 2, "usage: kombu"},
		{[]string{"nope"}, nil, 2, `unknown command "nope"`},
		{[]string{"publish", "hello"}, nil, 2, "KOMBU_URL"},
		{[]string{"consume", "--queue", "q"}, nil, 2, "no broker URL"},
		{[]string{"queues"}, nil, 2, "no broker URL"},
		{[]string{"purge", "q"}, nil, 2, "no broker URL"},
		{[]string{"top"}, nil, 2, "no broker URL"},
		{[]string{"publish", "--url", "memory://", "--bogus", "x"}, nil, 2, "unknown flag: --bogus"},
		{[]string{"publish", "--url", "memory://"}, nil, 2, "exactly one BODY"},
		{[]string{"publish", "--url", "memory://", "--expiration", "soon", "x"}, nil, 2, "bad --expiration"},
		{[]string{"publish", "--url", "memory://", "--queue-arg", "x-max-priority=10", "x"}, nil, 2, "--declare-queue"},
		{[]string{"consume", "--url", "memory://", "--queue", "q", "--exchange", "e"}, nil, 2, "add --declare"},
		{[]string{"consume", "--url", "memory://", "--queue", "q", "--no-ack", "--reject"}, nil, 2, "exclude each other"},
		{[]string{"consume", "--url", "memory://", "--queue", "q", "--accept", "json,nonsense"}, nil, 2, "nonsense"},
		{[]string{"bench", "--messages", "0"}, nil, 2, "--messages"},
		{[]string{"publish", "--url", "nosuch://x", "body"}, nil, 1, "nosuch"},
		{[]string{"consume", "--url", "memory://binary-test", "--queue", "missing", "--timeout", "1s"}, nil, 1, `queue "missing" does not exist`},
		{[]string{"queues", "--url", "memory://"}, nil, 1, "name them"},
	}
	for _, c := range cases {
		r := kombu(t, c.env, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.stderrHas) {
			t.Errorf("kombu %s: want exit %d and %q on stderr, got\n%s", strings.Join(c.args, " "), c.code, c.stderrHas, r)
		}
		if r.code != 0 && r.stdout != "" {
			t.Errorf("kombu %s: exit %d with output on stdout:\n%s", strings.Join(c.args, " "), r.code, r)
		}
	}
}

func TestBinaryHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"publish", "--help"}, {"consume", "-h"}, {"top", "--help"}} {
		r := mustRun(t, nil, args...)
		if !strings.Contains(r.stdout, "usage: kombu") || r.stderr != "" {
			t.Errorf("kombu %s: help belongs on stdout:\n%s", strings.Join(args, " "), r)
		}
	}
	r := mustRun(t, nil, "publish", "--help")
	for _, f := range []string{"--mandatory", "--confirm", "--expiration", "--correlation-id", "--reply-to", "--queue-arg", "--binding-arg", "--json"} {
		if !strings.Contains(r.stdout, f) {
			t.Errorf("publish --help lacks %s", f)
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}, {"-V"}} {
		r := mustRun(t, nil, args...)
		if !strings.HasPrefix(r.stdout, "kombu ") || !strings.Contains(r.stdout, "go1.") {
			t.Errorf("kombu %s:\n%s", args[0], r)
		}
	}
	v := decodeJSON[map[string]any](t, mustRun(t, nil, "version", "--json").stdout)
	for _, k := range []string{"version", "go", "os", "arch"} {
		if s, _ := v[k].(string); s == "" {
			t.Errorf("version --json lacks %q: %v", k, v)
		}
	}
}

// TestBinaryFlagsAnywhere: flags after the arguments, before the command,
// and in the single-dash form of earlier versions all count; KOMBU_URL is
// read; memory:// is used when named.
func TestBinaryFlagsAnywhere(t *testing.T) {
	mem := "memory://flags-anywhere"
	r := mustRun(t, nil, "publish", "hello", "--url", mem, "--json", "--routing-key", "q")
	if p := decodeJSON[publishedJSON](t, r.stdout); p.Published != 1 || p.RoutingKey != "q" {
		t.Errorf("publish BODY --flags: %+v", p)
	}
	r = mustRun(t, nil, "--url", mem, "--json", "publish", "--routing-key", "q", "hello")
	if p := decodeJSON[publishedJSON](t, r.stdout); p.Published != 1 {
		t.Errorf("kombu --flags publish: %+v", p)
	}
	r = mustRun(t, nil, "publish", "-url", mem, "-count=2", "-routing-key", "q", "-json", "hello")
	if p := decodeJSON[publishedJSON](t, r.stdout); p.Published != 2 {
		t.Errorf("single-dash flags: %+v", p)
	}
	r = mustRun(t, []string{"KOMBU_URL=" + mem}, "publish", "--json", "--routing-key", "q", "--", "-5")
	if p := decodeJSON[publishedJSON](t, r.stdout); p.Published != 1 {
		t.Errorf("KOMBU_URL and a body after --: %+v", p)
	}
}

// TestBinaryNoProgressOnPipes: with stderr a pipe, a long run writes no
// progress there: stderr holds only what the command must say.
func TestBinaryNoProgressOnPipes(t *testing.T) {
	r := mustRun(t, nil, "bench", "--messages", "300000", "--latency", "10", "--json")
	if r.stderr != "" {
		t.Errorf("bench through a pipe wrote to stderr:\n%s", r)
	}
	decodeJSON[map[string]any](t, r.stdout)
	r = mustRun(t, nil, "publish", "--url", "memory://pipes", "--count", "100000", "--routing-key", "q", "hello")
	if r.stderr != "" || !strings.HasPrefix(r.stdout, "published 100000 message(s)") {
		t.Errorf("publish --count through a pipe:\n%s", r)
	}
}
