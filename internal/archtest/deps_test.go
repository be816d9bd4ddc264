package archtest

import (
	"bufio"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// policy defines which imports each package of this module may have. It is a statement of policy,
// taken from DESIGN.md ("Import direction"), which stands over style.md.
//
// DO NOT CHANGE THIS DATA TO FIX A BUILD.
// An existing package's rule is not relaxed without a change to DESIGN.md first. The negative
// assertions in forbidden should almost never be removed; TestPolicyConsistent fails if this table
// allows an import that forbidden denies, so relaxing one means deleting the other, on purpose.
//
// Keys are package directories relative to the module root; a key ending in "/..." covers that
// directory and everything below it. A package whose directory matches no key fails the test:
// add it to the policy deliberately. The standard library is always allowed, cgo ("C") never
// (except where anything goes).
//
// Test files (_test.go) are held to their package's rule plus testExtras: go.uber.org/goleak and
// the Redis Cluster fixture internal/testbroker/rediscluster everywhere, the conformance suite
// transport/transporttest for the transports, and the package itself (external _test packages). Negative assertions hold for test files too.
var policy = map[string]rule{
	// The core: fds, deadlines and closures. Stdlib (and x/sys for the poller) only.
	"poller":        {external: []string{"golang.org/x/sys"}},
	"timer":         {},
	"internal/resp": {},
	// Redis Cluster's key hash slot (CRC16 and the hash-tag rule), for the Redis transport, its
	// cluster test fixture and the benchmarks: a pure function, stdlib only.
	"internal/hashslot": {},

	// The event loop.
	"hub": {ours: []string{"poller", "timer"}, external: []string{"golang.org/x/sys"}},

	// Wire types and interfaces. The loop type appears in the contract, so transport may import hub.
	"transport": {ours: []string{"hub"}},

	// The conformance suite: imported only by the transports' test files.
	"transport/transporttest": {
		ours:     []string{"transport", "hub"},
		external: []string{"go.uber.org/goleak"},
	},

	// Kombu's virtual channel: exchange types, bindings, QoS, over a store interface.
	"channel": {ours: []string{"transport", "channel/envelope", "hub", "timer", "internal/optmap"}},

	// Kombu's JSON envelope (kombu.transport.virtual's message format), for the virtual transports
	// that store it. It knows no transport: stdlib only.
	"channel/envelope": {},

	// Kombu's untyped option maps read into typed fields, for every transport; its errors are the
	// contract's transport.OptionError.
	"internal/optmap": {ours: []string{"transport"}},

	// The transports. They never import messaging, nor each other.
	"transport/memory": {ours: []string{"transport", "channel", "hub", "internal/optmap"}},
	"transport/redis": {
		ours: []string{"transport", "channel", "channel/envelope", "hub", "internal/resp", "internal/optmap", "internal/hashslot"},
		// x/sys: DESIGN.md ("The Redis transport") has this package create or take over the
		// BRPOP/SUBSCRIBE sockets itself (unix.Socket, dup of the fd) to put them in the hub.
		external: []string{"github.com/redis/go-redis/v9", "golang.org/x/sys"},
	},
	"transport/filesystem": {
		ours: []string{"transport", "channel", "channel/envelope", "hub", "internal/optmap"},
		// x/sys: the folder watch is an inotify (Linux) or kqueue (darwin, freebsd) descriptor
		// registered in the hub, the connection's liveness lock is a flock, and file names carry
		// CLOCK_MONOTONIC milliseconds as Python's time.monotonic() does.
		external: []string{"golang.org/x/sys"},
	},
	// Kombu's SQLAlchemy transport layout over PostgreSQL (pgx) and MySQL/MariaDB.
	"transport/sqla": {
		ours:     []string{"transport", "channel", "channel/envelope", "hub", "internal/optmap"},
		external: []string{"github.com/jackc/pgx/v5", "github.com/go-sql-driver/mysql"},
	},
	"transport/sqs": {
		ours:     []string{"transport", "channel", "channel/envelope", "hub", "internal/optmap"},
		external: []string{"github.com/aws/aws-sdk-go-v2", "github.com/aws/smithy-go"},
	},
	"transport/amqp": { // AMQP routes natively: no channel.
		ours:     []string{"transport", "hub", "internal/optmap"},
		external: []string{"github.com/rabbitmq/amqp091-go"},
	},

	// Codecs: leaves. Third-party codec modules are allowed here (and need a README sentence).
	"messaging/serializer":  {external: []string{anyModule}},
	"messaging/compression": {external: []string{anyModule}},

	// The Kombu-style API. It names the built-in transports for URL schemes; it reaches the loop
	// only through hub (never poller or timer) and never the virtual channel.
	"messaging": {ours: []string{
		"transport", "hub", "internal/optmap",
		"transport/memory", "transport/redis", "transport/amqp", "transport/filesystem", "transport/sqla", "transport/sqs",
		"messaging/serializer", "messaging/compression",
	}},

	// Celery's task protocol, client, worker and result backends (DESIGN.md amendment 2026-12-02:
	// above messaging; nothing below imports it). hub: the worker's ETA timers run on the
	// consuming connection's hub. go-redis: Celery's Redis result backend (GET/SETEX/PUBLISH/
	// SUBSCRIBE on celery-task-meta-<id>) is not a messaging operation; go-redis is already the
	// module's Redis client.
	"celery": {
		ours:     []string{"messaging", "messaging/serializer", "hub"},
		external: []string{"github.com/redis/go-redis/v9"},
	},

	// Programs and the benchmark harness.
	"cmd/kombu/...": {anything: true},
	"examples/...":  {anything: true},
	"bench/...":     {anything: true},

	// The fault-test harness (issue 9): test processes that drive the public API and Redis.
	"internal/faulttest": {anything: true},

	// This package: a test of the tree, stdlib only.
	"internal/archtest": {},

	// Brokers for tests (issue 15): a Redis Cluster fixture that any package's _test.go files use
	// (see testExtras). It queries the nodes over RESP with the bottom-layer reader.
	"internal/testbroker/...": {ours: []string{"internal/resp", "internal/hashslot"}},
}

// testExtras is what _test.go files may import on top of their package's rule.
var testExtras = map[string]rule{
	"...":                  {ours: []string{"internal/testbroker/rediscluster"}, external: []string{"go.uber.org/goleak"}},
	"transport/memory":     {ours: []string{"transport/transporttest"}},
	"transport/redis":      {ours: []string{"transport/transporttest"}},
	"transport/amqp":       {ours: []string{"transport/transporttest"}},
	"transport/filesystem": {ours: []string{"transport/transporttest"}},
	"messaging":            {ours: []string{"transport/transporttest"}},
	"transport/sqla":       {ours: []string{"transport/transporttest"}},
	"transport/sqs":        {ours: []string{"transport/transporttest"}},
	"celery":               {ours: []string{"transport/transporttest"}},
}

// forbidden lists negative assertions, checked against the actual imports (test files included,
// unless nonTestOnly) and against policy itself. Patterns are module-relative; "x/..." is x and
// everything below it, "..." is every package of ours.
var forbidden = []negative{
	{
		from: []string{"poller", "timer", "internal/resp", "internal/hashslot"},
		to:   []string{"..."},
		why:  "the bottom layer imports none of our packages",
	},
	{
		from: []string{"hub"},
		to:   []string{"transport/...", "channel/...", "messaging/...", "internal/resp"},
		why:  "the hub never speaks of messages, queues or brokers",
	},
	{
		from: []string{"transport"},
		to: []string{"channel/...", "messaging/...", "transport/memory", "transport/redis",
			"transport/amqp", "transport/filesystem", "transport/sqla", "transport/sqs", "transport/transporttest"},
		why: "the contract package knows no implementation",
	},
	{
		from: []string{"channel/..."},
		to:   []string{"messaging/...", "transport/memory", "transport/redis", "transport/amqp", "transport/filesystem", "transport/sqla", "transport/sqs", "poller"},
		why:  "the virtual channel sits under the transports and reaches the OS only through hub",
	},
	{
		from: []string{"channel/envelope"},
		to:   []string{"..."},
		why:  "the envelope is a wire format and knows no transport",
	},
	{
		from: []string{"transport/amqp"},
		to:   []string{"channel/..."},
		why:  "AMQP routes natively",
	},
	{
		from: transportPkgs,
		to:   []string{"messaging/..."},
		why:  "transports never import messaging",
	},
	{
		from: []string{"messaging"},
		to:   []string{"channel/...", "poller", "timer"},
		why:  "messaging goes through hub and the transports",
	},
	{
		from: []string{"messaging/serializer", "messaging/compression"},
		to:   []string{"..."},
		why:  "codecs are leaves and never see a transport",
	},
	{
		from: []string{"poller", "timer", "internal/resp", "hub", "transport/...", "channel/...", "messaging/..."},
		to:   []string{"celery/..."},
		why:  "celery sits above messaging: nothing below imports it",
	},
	{
		from:        []string{"..."},
		to:          []string{"transport/transporttest"},
		nonTestOnly: true,
		why:         "the conformance suite is for _test.go files",
	},
	{
		from: libraryPackages,
		to:   []string{"cmd/...", "bench/...", "examples/...", "internal/archtest", "internal/faulttest"},
		why:  "nothing in the library imports programs, benchmarks or the test harnesses",
	},
	{
		from:        []string{"..."},
		to:          []string{"internal/testbroker/..."},
		nonTestOnly: true,
		why:         "the test brokers are for _test.go files",
	},
}

// transportPkgs are the built-in transports: none imports another.
var transportPkgs = []string{"transport/memory", "transport/redis", "transport/amqp",
	"transport/filesystem", "transport/sqla", "transport/sqs"}

func init() {
	for _, from := range transportPkgs {
		var others []string
		for _, to := range transportPkgs {
			if to != from {
				others = append(others, to)
			}
		}
		forbidden = append(forbidden, negative{from: []string{from}, to: others,
			why: "transports never import each other"})
	}
}

// libraryPackages is every package of ours except programs and benchmarks.
var libraryPackages = []string{
	"poller", "timer", "internal/resp", "internal/hashslot", "internal/optmap", "hub", "transport/...", "channel/...", "messaging/...", "celery/...",
}

const anyModule = "*"

type rule struct {
	ours     []string // our packages (module-relative) it may import
	external []string // third-party module paths (and their subpackages) it may import; anyModule: any
	anything bool     // any import at all
}

type negative struct {
	from, to    []string
	nonTestOnly bool
	why         string
}

// importSite is one import of one file.
type importSite struct {
	path string // as written
	pos  string // file:line, relative to the module root
	test bool   // in a _test.go file
}

// TestDependencies checks every import of every package in the module against policy and forbidden.
func TestDependencies(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs, err := findImports(root)
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the tree, or this test would pass on nothing.
	for _, must := range []string{"internal/archtest", "transport"} {
		if _, ok := pkgs[must]; !ok {
			t.Fatalf("walk of %s did not find package %q: found %v", root, must, sortedKeys(pkgs))
		}
	}
	t.Logf("checked %d packages: %v", len(pkgs), sortedKeys(pkgs))
	for _, v := range check(module, pkgs) {
		t.Error(v)
	}
}

// check returns one message per violation. pkgs maps a module-relative package directory to its
// imports.
func check(module string, pkgs map[string][]importSite) []string {
	var out []string
	for _, pkg := range sortedKeys(pkgs) {
		r, ok := ruleFor(pkg)
		if !ok {
			out = append(out, fmt.Sprintf("package %q is not in the import policy: add it to the policy "+
				"in internal/archtest/deps_test.go (and to DESIGN.md's import table)", pkg))
			continue
		}
		for _, imp := range pkgs[pkg] {
			if msg := checkImport(module, pkg, r, imp); msg != "" {
				out = append(out, fmt.Sprintf("%s: unexpected dependency: %s imports %q: %s", imp.pos, pkg, imp.path, msg))
			}
			if rel, ours := relative(module, imp.path); ours {
				for _, n := range forbidden {
					if n.nonTestOnly && imp.test {
						continue
					}
					if matchAny(n.from, pkg) && matchAny(n.to, rel) && rel != pkg {
						out = append(out, fmt.Sprintf("%s: forbidden dependency: %s imports %q: %s", imp.pos, pkg, imp.path, n.why))
					}
				}
			}
		}
	}
	return out
}

// checkImport returns why imp is not allowed by r (with testExtras for test files), or "".
func checkImport(module, pkg string, r rule, imp importSite) string {
	if r.anything {
		return ""
	}
	rules := []rule{r}
	if imp.test {
		for pat, extra := range testExtras {
			if match(pat, pkg) {
				rules = append(rules, extra)
			}
		}
	}
	if rel, ours := relative(module, imp.path); ours {
		if rel == pkg && imp.test {
			return "" // an external _test package imports the package under test
		}
		for _, r := range rules {
			if slices.Contains(r.ours, rel) {
				return ""
			}
		}
		return fmt.Sprintf("%s may import only %v of ours", pkg, allOurs(rules))
	}
	if isStdlib(imp.path) {
		return ""
	}
	for _, r := range rules {
		for _, m := range r.external {
			if m == anyModule && imp.path != "C" || imp.path == m || strings.HasPrefix(imp.path, m+"/") {
				return ""
			}
		}
	}
	if imp.path == "C" {
		return "cgo is not allowed here"
	}
	return "third-party modules are allowed only where the policy lists them (codecs, cmd/kombu, bench)"
}

func allOurs(rules []rule) []string {
	var all []string
	for _, r := range rules {
		all = append(all, r.ours...)
	}
	if len(all) == 0 {
		return []string{"(none)"}
	}
	return all
}

// ruleFor finds pkg's rule: its exact key, else the longest "x/..." key that covers it.
func ruleFor(pkg string) (rule, bool) {
	if r, ok := policy[pkg]; ok {
		return r, true
	}
	best, found := "", false
	for key := range policy {
		if strings.HasSuffix(key, "/...") && match(key, pkg) && len(key) > len(best) {
			best, found = key, true
		}
	}
	return policy[best], found
}

// match reports whether the module-relative package pkg matches pattern ("x", "x/...", "...").
func match(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pattern == pkg
}

func matchAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, pkg) })
}

// relative returns the module-relative directory of an import path of ours.
func relative(module, path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// isStdlib reports whether path belongs to the standard library: its first element has no dot.
func isStdlib(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return path != "C" && !strings.Contains(first, ".")
}

// moduleRoot walks up from the working directory to go.mod and returns its directory and module path.
func moduleRoot(t *testing.T) (root, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		module, err := modulePath(filepath.Join(dir, "go.mod"))
		if err == nil {
			return dir, module
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// findImports parses the imports of every .go file under root (all GOOS and build tags; files
// marked //go:build ignore are skipped, as are testdata, vendor, hidden and _ directories and
// nested modules) and groups them by module-relative package directory.
func findImports(root string) (map[string][]importSite, error) {
	pkgs := map[string][]importSite{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module, with its own rules
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		for _, cg := range f.Comments {
			if cg.Pos() > f.Package {
				break
			}
			for _, c := range cg.List {
				if strings.TrimSpace(c.Text) == "//go:build ignore" {
					return nil // a go run script, not part of the package
				}
			}
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		dir = filepath.ToSlash(dir)
		if _, ok := pkgs[dir]; !ok {
			pkgs[dir] = nil // a package with no imports is still a package
		}
		for _, spec := range f.Imports {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", fset.Position(spec.Pos()), err)
			}
			pos := fset.Position(spec.Pos())
			rel, _ := filepath.Rel(root, pos.Filename)
			pkgs[dir] = append(pkgs[dir], importSite{
				path: p,
				pos:  fmt.Sprintf("%s:%d", filepath.ToSlash(rel), pos.Line),
				test: strings.HasSuffix(name, "_test.go"),
			})
		}
		return nil
	})
	return pkgs, err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestPolicyConsistent checks the tables against each other: every package named in a rule is in
// the policy, and no rule allows what a negative assertion forbids.
func TestPolicyConsistent(t *testing.T) {
	for _, tables := range []map[string]rule{policy, testExtras} {
		for pkg, r := range tables {
			for _, o := range r.ours {
				if _, ok := ruleFor(o); !ok {
					t.Errorf("rule for %q allows %q, which is not in the policy", pkg, o)
				}
			}
		}
	}
	for pkg, r := range policy {
		for _, o := range r.ours {
			for _, n := range forbidden {
				if matchAny(n.from, strings.TrimSuffix(pkg, "/...")) && matchAny(n.to, o) {
					t.Errorf("policy lets %s import %s, but a negative assertion forbids it (%s)", pkg, o, n.why)
				}
			}
		}
	}
	for pkg, r := range testExtras {
		for _, o := range r.ours {
			for _, n := range forbidden {
				if !n.nonTestOnly && matchAny(n.from, pkg) && matchAny(n.to, o) {
					t.Errorf("testExtras lets %s's tests import %s, but a negative assertion forbids it (%s)", pkg, o, n.why)
				}
			}
		}
	}
}

// TestCheckRejects feeds check imports that break the policy, so that TestDependencies is known to
// be able to fail, and imports that keep it, so that it is known not to cry wolf.
func TestCheckRejects(t *testing.T) {
	const mod = "example.com/m"
	site := func(path string, test bool) importSite { return importSite{path: path, pos: "x.go:1", test: test} }
	bad := []struct {
		pkg  string
		imp  importSite
		want string // a substring of the message
	}{
		{"hub", site(mod+"/transport", false), "the hub never speaks"},
		{"hub", site(mod+"/transport", true), "the hub never speaks"},
		{"poller", site(mod+"/timer", false), "bottom layer"},
		{"poller", site("github.com/redis/go-redis/v9", false), "third-party"},
		{"timer", site("golang.org/x/sys/unix", false), "third-party"},
		{"internal/resp", site("C", false), "cgo"},
		{"transport", site(mod+"/channel", false), "knows no implementation"},
		{"channel", site(mod+"/poller", false), "reaches the OS only through hub"},
		{"channel", site(mod+"/transport/memory", false), "sits under the transports"},
		{"transport/amqp", site(mod+"/channel", false), "AMQP routes natively"},
		{"transport/amqp", site("github.com/redis/go-redis/v9", false), "third-party"},
		{"transport/redis", site(mod+"/messaging", false), "transports never import messaging"},
		{"transport/redis", site(mod+"/transport/memory", false), "each other"},
		{"transport/redis", site("github.com/rabbitmq/amqp091-go", false), "third-party"},
		{"transport/memory", site(mod+"/transport/transporttest", false), "for _test.go files"},
		{"messaging", site(mod+"/channel", false), "messaging goes through hub"},
		{"messaging", site(mod+"/timer", false), "messaging goes through hub"},
		{"messaging", site(mod+"/poller", true), "messaging goes through hub"},
		{"messaging", site("github.com/redis/go-redis/v9", false), "third-party"},
		{"messaging/serializer", site(mod+"/transport", false), "codecs are leaves"},
		{"messaging/compression", site(mod+"/messaging/serializer", false), "codecs are leaves"},
		{"hub", site(mod+"/bench", false), "nothing in the library"},
		{"transport/redis", site(mod+"/internal/testbroker/rediscluster", false), "test brokers are for _test.go files"},
		{"cmd/kombu", site(mod+"/internal/testbroker/rediscluster", false), "test brokers are for _test.go files"},
		{"internal/testbroker/rediscluster", site("github.com/redis/go-redis/v9", false), "third-party"},
		{"internal/testbroker/rediscluster", site(mod+"/transport", false), "may import only"},
		{"newpkg", site("fmt", false), "add it to the policy"},
		{"messaging/pool", site("fmt", false), "add it to the policy"},
		{"cmd/other", site("fmt", false), "add it to the policy"},
	}
	for _, c := range bad {
		got := check(mod, map[string][]importSite{c.pkg: {c.imp}})
		if !slices.ContainsFunc(got, func(m string) bool { return strings.Contains(m, c.want) }) {
			t.Errorf("%s importing %q (test=%v): got %q, want a message containing %q", c.pkg, c.imp.path, c.imp.test, got, c.want)
		}
	}

	good := []struct {
		pkg string
		imp importSite
	}{
		{"poller", site("golang.org/x/sys/unix", false)},
		{"hub", site(mod+"/poller", false)},
		{"hub", site("go.uber.org/goleak", true)},
		{"hub", site(mod+"/hub", true)},
		{"transport", site(mod+"/hub", false)},
		{"transport/transporttest", site(mod+"/transport", false)},
		{"transport/memory", site(mod+"/channel", false)},
		{"transport/memory", site(mod+"/transport/transporttest", true)},
		{"transport/redis", site("github.com/redis/go-redis/v9/maintnotifications", false)},
		{"transport/redis", site(mod+"/internal/resp", false)},
		{"transport/amqp", site("github.com/rabbitmq/amqp091-go", false)},
		{"channel", site(mod+"/timer", false)},
		{"messaging", site(mod+"/transport/redis", false)},
		{"messaging/compression", site("github.com/klauspost/compress/zstd", false)},
		{"cmd/kombu", site(mod+"/transport/redis", false)},
		{"cmd/kombu/internal/x", site("C", false)},
		{"bench", site(mod+"/poller", false)},
		{"internal/archtest", site("go/parser", false)},
		{"transport/redis", site(mod+"/internal/testbroker/rediscluster", true)},
		{"messaging", site(mod+"/internal/testbroker/rediscluster", true)},
		{"internal/testbroker/rediscluster", site(mod+"/internal/resp", false)},
	}
	for _, c := range good {
		if got := check(mod, map[string][]importSite{c.pkg: {c.imp}}); len(got) != 0 {
			t.Errorf("%s importing %q (test=%v): unexpected violations %q", c.pkg, c.imp.path, c.imp.test, got)
		}
	}
}
