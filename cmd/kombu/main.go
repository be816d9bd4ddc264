// Command kombu is kombu-go's command-line tool: publish and consume
// messages on any transport, list and watch queues, benchmark a broker, and
// run the poller microbenchmarks.
//
// Usage:
//
//	kombu <command> [flags] [arguments]
//
// Commands: bench, consume, poller-bench, publish, purge, queues, top,
// version. Flags may come before or after the arguments (`kombu purge q1
// --url redis://...`), and `--` ends them. Run `kombu <command> --help` for
// each command's flags. Flags and the --json output are a contract: they
// change only by addition.
//
// The broker URL comes from --url or, failing that, the KOMBU_URL
// environment variable. Commands that talk to a broker refuse to fall back
// to memory:// (an in-process broker that dies with the command); bench
// alone keeps memory:// as its default.
//
// Progress goes to stderr, and only when stderr is a terminal.
//
// Exit codes: 0 success, 1 failure (the broker refused, a message was
// returned, a queue is missing ...), 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// env is what a command sees of its process: the output streams, the
// environment and the terminal. Tests substitute every field.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdin is the terminal top reads keys from; nil when stdin is not a
	// terminal.
	stdin *os.File
	// stdoutTTY and stderrTTY tell whether the streams are terminals; their
	// descriptors (for the window size), -1 when they are not files.
	stdoutTTY, stderrTTY bool
	stdoutFd, stderrFd   int
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// errUsage marks a usage error (exit code 2); the message was printed.
var errUsage = errors.New("usage")

// errHelp marks --help (exit code 0); the usage was printed.
var errHelp = errors.New("help")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kombu <command> [flags] [arguments]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nThe broker URL comes from --url or the KOMBU_URL environment variable.")
	fmt.Fprintln(w, "Flags may come anywhere; `--` ends them. Run 'kombu <command> --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 failure, 2 usage error. 'kombu --version' prints the version.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stdoutFd: -1, stderrFd: -1}
	if isTerminal(int(os.Stdout.Fd())) {
		e.stdoutTTY, e.stdoutFd = true, int(os.Stdout.Fd())
	}
	if isTerminal(int(os.Stderr.Fd())) {
		e.stderrTTY, e.stderrFd = true, int(os.Stderr.Fd())
	}
	if isTerminal(int(os.Stdin.Fd())) {
		e.stdin = os.Stdin
	}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	if e.getenv == nil {
		e.getenv = func(string) string { return "" }
	}
	i := commandIndex(args)
	if i < 0 {
		for _, a := range args {
			switch a {
			case "--version", "-version", "-V":
				return exitCode(e, "version", runVersion(ctx, e, args))
			case "-h", "--help", "-help", "help":
				usage(e.stdout)
				return 0
			}
		}
		if len(args) == 0 {
			usage(e.stderr)
			return 2
		}
		fmt.Fprintf(e.stderr, "kombu: unknown command %q\n", firstNonFlag(args))
		usage(e.stderr)
		return 2
	}
	c := commands[args[i]]
	// Flags given before the command belong to it: `kombu --url U queues`.
	rest := append(append([]string{}, args[:i]...), args[i+1:]...)
	return exitCode(e, c.name, c.run(ctx, e, rest))
}

func exitCode(e *env, name string, err error) int {
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(e.stderr, "kombu %s: %v\n", name, err)
	return 1
}

// commandIndex returns the index of the first argument that names a
// command ("help" is not one), or -1. Arguments before it are flags.
func commandIndex(args []string) int {
	for i, a := range args {
		if a == "--" {
			return -1
		}
		if _, ok := commands[a]; ok {
			return i
		}
	}
	return -1
}

func firstNonFlag(args []string) string {
	for _, a := range args {
		if len(a) == 0 || a[0] != '-' {
			return a
		}
	}
	return args[0]
}
