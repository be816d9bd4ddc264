package main

// The tests in binary_*_test.go run the built kombu binary as a process,
// as operators run it: through pipes (so no terminal: no progress), with
// an environment of their choosing, and judge its exit code, stdout and
// stderr. TestMain builds the binary once (with -race when the tests run
// with it).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// kombuBin is the path of the binary TestMain built.
var kombuBin string

func TestMain(m *testing.M) {
	// Every hub these tests create (and the binaries they start, which
	// inherit the environment) checks that its hub-only methods are called
	// by its owner (hub.Options.CheckOwner).
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	dir, err := os.MkdirTemp("", "kombu-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kombuBin = filepath.Join(dir, "kombu")
	if err := buildKombu(kombuBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// buildKombu builds this package into out.
func buildKombu(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building the kombu binary for the CLI tests needs the go command in PATH: %w", err)
	}
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(gobin, append(args, ".")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build of the kombu binary: %v\n%s", err, b)
	}
	return nil
}

// result is what one run of the binary produced.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// kombu runs the binary with args. env adds NAME=value entries to the
// test's environment, from which KOMBU_URL is removed.
func kombu(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kombuBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KOMBU_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	switch e := err.(type) {
	case nil:
	case *exec.ExitError:
		r.code = e.ExitCode()
	default:
		t.Fatalf("kombu %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("kombu %s: did not finish in 3 minutes\n%s", strings.Join(args, " "), r)
	}
	return r
}

// mustRun runs the binary and fails the test unless it exits 0.
func mustRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := kombu(t, env, args...)
	if r.code != 0 {
		t.Fatalf("kombu %s:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// decodeJSON decodes one JSON document of the binary's stdout.
func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not the JSON expected (%v):\n%s", err, s)
	}
	return v
}

// jsonLines decodes stdout's lines, one JSON document each.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, decodeJSON[T](t, l))
		}
	}
	return out
}

// uniqueName returns a name no other test (or engineer) uses.
func uniqueName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// brokerURL returns the test broker's URL from the environment variable,
// skipping (or failing, with KOMBU_REQUIRE_BROKERS=1) without it.
func testBroker(t *testing.T, name, variable string) string {
	t.Helper()
	u := os.Getenv(variable)
	if u == "" {
		if os.Getenv("KOMBU_REQUIRE_BROKERS") == "1" {
			t.Fatalf("%s is unset and KOMBU_REQUIRE_BROKERS=1: run ./scripts/test.sh", variable)
		}
		t.Skipf("no %s: %s is unset (./scripts/test.sh finds or starts one)", name, variable)
	}
	return u
}

// withQuery adds a query parameter to a broker URL.
func withQuery(u, kv string) string {
	if strings.Contains(u, "?") {
		return u + "&" + kv
	}
	return u + "?" + kv
}
