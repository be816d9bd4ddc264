package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// exchangeFlags are the --exchange/--exchange-type pair shared by commands.
type exchangeFlags struct {
	name, kind string
}

func (e exchangeFlags) exchange() (messaging.Exchange, error) {
	switch e.kind {
	case "", messaging.Direct, messaging.Topic, messaging.Fanout, messaging.Headers:
	default:
		return messaging.Exchange{}, fmt.Errorf("unknown exchange type %q (choose direct, topic, fanout or headers)", e.kind)
	}
	if e.name == "" {
		return messaging.Exchange{}, nil
	}
	return messaging.NewExchange(e.name, e.kind), nil
}

// progress prints a single updating line on a terminal-like writer.
type progress struct {
	w     io.Writer
	quiet bool
	last  time.Time
}

func (p *progress) update(format string, args ...any) {
	if p.quiet || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r"+format+"   ", args...)
}

func (p *progress) done() {
	if !p.quiet {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
