package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kombu-go/kombu/messaging"
)

// newFlags returns a command's flag set: GNU-style long flags that may
// come anywhere among the arguments. --help prints the usage to stdout.
func newFlags(e *env, name, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetInterspersed(true)
	fs.SortFlags = false
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "usage: kombu %s %s\n\nflags:\n%s", name, synopsis, fs.FlagUsages())
	}
	return fs
}

// parse parses args into fs. A usage error is printed (with a pointer to
// --help) and returned as errUsage; --help returns errHelp.
func parse(e *env, fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(goStyleArgs(fs, args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return errHelp
		}
		fmt.Fprintf(e.stderr, "kombu %s: %v\nRun 'kombu %s --help' for the flags.\n", fs.Name(), err, fs.Name())
		return errUsage
	}
	return nil
}

// usageErr prints a usage error and returns errUsage.
func usageErr(e *env, fs *pflag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(e.stderr, "kombu %s: %s\nRun 'kombu %s --help' for the flags.\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return errUsage
}

// goStyleArgs rewrites the single-dash long flags that the standard flag
// package accepted (-url X, -count=3) to their double-dash form, so that
// command lines written for earlier versions keep working. Values of flags
// and everything after "--" are left alone.
func goStyleArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	skip := false
	for i, a := range args {
		if skip {
			skip = false
			out = append(out, a)
			continue
		}
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, isLong := strings.CutPrefix(a, "--")
		if !isLong && len(a) > 2 && a[0] == '-' {
			n, _, _ := strings.Cut(a[1:], "=")
			if fs.Lookup(n) != nil {
				a = "-" + a
				name = a[2:]
			}
		}
		if strings.HasPrefix(a, "--") {
			n, _, withEq := strings.Cut(name, "=")
			if f := fs.Lookup(n); f != nil && !withEq && f.NoOptDefVal == "" {
				skip = true // the next argument is this flag's value
			}
		}
		out = append(out, a)
	}
	return out
}

// brokerURL resolves a command's broker URL: --url, else $KOMBU_URL. There
// is no implicit memory:// for commands that talk to a broker: it would
// publish into, or read from, a broker that lives only as long as this
// process.
func brokerURL(e *env, fs *pflag.FlagSet, flagValue string) (string, error) {
	if fs.Changed("url") {
		if strings.TrimSpace(flagValue) == "" {
			return "", usageErr(e, fs, "--url is empty")
		}
		return flagValue, nil
	}
	if u := strings.TrimSpace(e.getenv("KOMBU_URL")); u != "" {
		return u, nil
	}
	return "", usageErr(e, fs, "no broker URL: pass --url (redis://host:6379/0, amqp://user:pass@host:5672//, ...) or set KOMBU_URL; "+
		"memory:// is used only when named, since that broker lives only as long as this command")
}

// urlHelp is the help text of --url on commands that talk to a broker.
const urlHelp = "broker URL (redis://host:6379/0, amqp://user:pass@host:5672//, ...); default: $KOMBU_URL"

// exchangeFlags are the --exchange/--exchange-type pair shared by commands.
type exchangeFlags struct {
	name, kind string
}

func (x exchangeFlags) exchange() (messaging.Exchange, error) {
	switch x.kind {
	case "", messaging.Direct, messaging.Topic, messaging.Fanout, messaging.Headers:
	default:
		return messaging.Exchange{}, fmt.Errorf("unknown exchange type %q (choose direct, topic, fanout or headers)", x.kind)
	}
	if x.name == "" {
		return messaging.Exchange{}, nil
	}
	return messaging.NewExchange(x.name, x.kind), nil
}

// parseArgs turns repeated k=v flags into a table of declaration
// arguments. A value that is a JSON number, true, false or a quoted JSON
// string is that value (x-max-priority=10 is the integer 10, which
// RabbitMQ requires; k='"10"' is the string "10"); anything else is a
// string.
func parseArgs(flag string, kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad %s %q (want k=v)", flag, kv)
		}
		out[k] = argValue(v)
	}
	return out, nil
}

func argValue(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if len(v) > 0 && (v[0] == '-' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9')) {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	if len(v) >= 2 && v[0] == '"' {
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return s
		}
	}
	return v
}

// driverOf returns the transport name of a connection: memory, redis or
// amqp (or a registered scheme's).
func driverOf(conn *messaging.Connection) string {
	info, err := conn.TransportInfo()
	if err != nil {
		return ""
	}
	return info.Driver
}
