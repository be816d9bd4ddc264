package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

func init() {
	register(command{name: "queues", summary: "show the message count of queues (passive declare)", run: runQueues})
	register(command{name: "purge", summary: "remove every ready message from queues", run: runPurge})
}

// queueCommand parses `--url URL NAME...` and opens the connection's
// default channel; the caller closes the connection.
func queueCommand(ctx context.Context, name string, args []string, stderr io.Writer) (*messaging.Connection, transport.Channel, []string, error) {
	fs := newFlags(name, "--url URL NAME...", stderr)
	url := fs.String("url", "memory://", "broker URL")
	if err := parse(fs, args); err != nil {
		return nil, nil, nil, err
	}
	if fs.NArg() == 0 {
		fmt.Fprintf(stderr, "kombu %s: name at least one queue\n", name)
		return nil, nil, nil, errUsage
	}
	conn, err := messaging.NewConnection(*url, messaging.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return conn, ch, fs.Args(), nil
}

func runQueues(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	conn, ch, names, err := queueCommand(ctx, "queues", args, stderr)
	if err != nil {
		return err
	}
	defer conn.Close()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "queue\tmessages\tconsumers")
	missing := 0
	for _, name := range names {
		info, err := ch.DeclareQueue(ctx, transport.Queue{Name: name, Passive: true})
		if errors.Is(err, transport.ErrNotFound) {
			// An empty Redis queue does not exist (Kombu's rule).
			fmt.Fprintf(tw, "%s\t-\t-\n", name)
			missing++
			if ch, err = conn.DefaultChannel(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", name, info.Messages, info.Consumers)
	}
	tw.Flush()
	if missing > 0 {
		fmt.Fprintf(stderr, "%d queue(s) not found (on Redis an empty queue does not exist)\n", missing)
	}
	return nil
}

func runPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	conn, ch, names, err := queueCommand(ctx, "purge", args, stderr)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, name := range names {
		n, err := ch.PurgeQueue(ctx, name)
		if err != nil {
			return fmt.Errorf("purge %s: %w", name, err)
		}
		fmt.Fprintf(stdout, "%s: purged %d message(s)\n", name, n)
	}
	return nil
}
