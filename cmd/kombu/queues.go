package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/sqla"
)

func init() {
	register(command{name: "queues", summary: "list the queues (Redis: Kombu's bindings; RabbitMQ: the management API; SQL: the queue table), or show the named ones", run: runQueues})
	register(command{name: "purge", summary: "remove every ready message from queues", run: runPurge})
}

// queuesJSON is `kombu queues --json` (a contract: fields are only ever
// added).
type queuesJSON struct {
	Transport string `json:"transport"`
	// Source says where the list came from: "bindings" (Redis),
	// "management <url>" (RabbitMQ), "named" (passive declares).
	Source string      `json:"source"`
	Queues []queueJSON `json:"queues"`
	// OtherUnacked (Redis) counts unacked records of no listed queue.
	OtherUnacked *int `json:"other_unacked,omitempty"`
}

// queueJSON is one queue; fields a source cannot know are left out.
type queueJSON struct {
	Name string `json:"name"`
	// Exists is false for a named queue the broker does not have.
	Exists bool `json:"exists"`
	// Messages counts the ready messages (not the unacknowledged ones).
	Messages       int64            `json:"messages"`
	ByPriority     map[string]int64 `json:"by_priority,omitempty"`
	Unacked        *int64           `json:"unacked,omitempty"`
	OldestUnackedS *float64         `json:"oldest_unacked_s,omitempty"`
	Consumers      *int             `json:"consumers,omitempty"`
	Exchanges      []string         `json:"exchanges,omitempty"`
	State          string           `json:"state,omitempty"`
	Durable        *bool            `json:"durable,omitempty"`
	Arguments      map[string]any   `json:"arguments,omitempty"`
	PublishPerS    *float64         `json:"publish_per_s,omitempty"`
	ConsumePerS    *float64         `json:"consume_per_s,omitempty"`
}

func runQueues(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "queues", "[--url URL] [--management-url URL] [--json] [NAME...]")
	url := fs.String("url", "", urlHelp)
	mgmt := fs.String("management-url", "", "RabbitMQ: the management API (default http://<host of --url>:15672, with the --url credentials)")
	jsonOut := fs.Bool("json", false, "print a JSON object")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	u, err := brokerURL(e, fs, *url)
	if err != nil {
		return err
	}
	out, err := listQueues(ctx, u, *mgmt, fs.Args())
	if err != nil {
		return err
	}
	if *jsonOut {
		return writeJSON(e.stdout, out)
	}
	printQueues(e.stdout, out)
	missing := 0
	for _, q := range out.Queues {
		if !q.Exists {
			missing++
		}
	}
	if missing > 0 {
		fmt.Fprintf(e.stderr, "%d queue(s) not found\n", missing)
	}
	return nil
}

// listQueues reads the queues: names given, those; none, every queue the
// broker can list.
func listQueues(ctx context.Context, url, mgmtURL string, names []string) (queuesJSON, error) {
	conn, err := messaging.NewConnection(url, messaging.Options{})
	if err != nil {
		return queuesJSON{}, err
	}
	defer conn.Close()
	driver := driverOf(conn)
	switch {
	case driver == "redis":
		return redisQueues(ctx, url, names)
	case driver == "amqp" && len(names) == 0:
		return amqpQueues(ctx, url, mgmtURL)
	case driver == "filesystem" && len(names) == 0:
		return filesystemQueues(url)
	case driver == "sqlalchemy":
		return sqlaQueues(ctx, conn, names)
	case len(names) == 0:
		// A transport that can list its queues (SQS: ListQueues).
		if ch, err := conn.DefaultChannel(ctx); err == nil {
			if l, ok := ch.(queueLister); ok {
				if names, err = l.ListQueues(ctx, ""); err != nil {
					return queuesJSON{}, err
				}
				out, err := namedQueues(ctx, conn, driver, names)
				out.Source = "listed"
				return out, err
			}
		}
		return queuesJSON{}, fmt.Errorf("the %s transport cannot list its queues: name them (kombu queues NAME...)", driver)
	}
	return namedQueues(ctx, conn, driver, names)
}

// queueLister is implemented by channels that can list their broker's
// queues (transport/sqs).
type queueLister interface {
	ListQueues(ctx context.Context, prefix string) ([]string, error)
}

// namedQueues asks the broker about each queue with a passive declare.
func namedQueues(ctx context.Context, conn *messaging.Connection, driver string, names []string) (queuesJSON, error) {
	out := queuesJSON{Transport: driver, Source: "named", Queues: []queueJSON{}}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return out, err
	}
	for _, name := range names {
		info, err := ch.DeclareQueue(ctx, transport.Queue{Name: name, Passive: true})
		if errors.Is(err, transport.ErrNotFound) {
			out.Queues = append(out.Queues, queueJSON{Name: name})
			// RabbitMQ closed the channel: the next passive declare needs
			// a fresh one.
			if ch, err = conn.DefaultChannel(ctx); err != nil {
				return out, err
			}
			continue
		}
		if err != nil {
			return out, fmt.Errorf("queue %s: %w", name, err)
		}
		consumers := info.Consumers
		out.Queues = append(out.Queues, queueJSON{Name: name, Exists: true, Messages: int64(info.Messages), Consumers: &consumers})
	}
	return out, nil
}

func redisQueues(ctx context.Context, url string, names []string) (queuesJSON, error) {
	v, err := newRedisView(url)
	if err != nil {
		return queuesJSON{}, err
	}
	defer v.Close()
	snap, err := v.snapshot(ctx, names)
	if err != nil {
		return queuesJSON{}, err
	}
	out := queuesJSON{Transport: "redis", Source: "bindings", Queues: []queueJSON{}, OtherUnacked: &snap.Other}
	if len(names) > 0 {
		out.Source = "named"
	}
	for _, q := range snap.Queues {
		j := queueJSON{Name: q.Name, Messages: q.Messages, Exchanges: q.Exchanges, ByPriority: map[string]int64{},
			Exists: q.Messages > 0 || q.Unacked > 0 || len(q.Exchanges) > 0}
		for i, s := range v.steps {
			j.ByPriority[strconv.Itoa(s)] = q.ByStep[i]
		}
		un := int64(q.Unacked)
		j.Unacked = &un
		if !q.OldestUnacked.IsZero() {
			a := age(snap.Taken, q.OldestUnacked)
			j.OldestUnackedS = &a
		}
		out.Queues = append(out.Queues, j)
	}
	return out, nil
}

// sqlaQueues reads the queue table: every queue, or the named ones.
// Unacked counts the invisible rows: claimed by a consumer, or (rows of
// Python Kombu, which never deletes them) already acknowledged.
func sqlaQueues(ctx context.Context, conn *messaging.Connection, names []string) (queuesJSON, error) {
	out := queuesJSON{Transport: "sqlalchemy", Source: "queue table", Queues: []queueJSON{}}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return out, err
	}
	sc, ok := ch.(*sqla.Channel)
	if !ok {
		return out, fmt.Errorf("the sqlalchemy transport's channel is a %T", ch)
	}
	stats, err := sc.Queues(ctx)
	if err != nil {
		return out, err
	}
	byName := make(map[string]sqla.QueueStat, len(stats))
	for _, s := range stats {
		byName[s.Name] = s
	}
	if len(names) == 0 {
		for _, s := range stats {
			names = append(names, s.Name)
		}
	} else {
		out.Source = "named"
	}
	for _, name := range names {
		s, exists := byName[name]
		un := int64(s.Invisible)
		out.Queues = append(out.Queues, queueJSON{Name: name, Exists: exists, Messages: int64(s.Ready), Unacked: &un})
	}
	return out, nil
}

func amqpQueues(ctx context.Context, url, mgmtURL string) (queuesJSON, error) {
	c, err := newMgmtClient(url, mgmtURL)
	if err != nil {
		return queuesJSON{}, err
	}
	qs, err := c.queues(ctx)
	if err != nil {
		return queuesJSON{}, err
	}
	out := queuesJSON{Transport: "amqp", Source: "management " + c.shown, Queues: []queueJSON{}}
	for _, q := range qs {
		un, consumers, durable := q.Unacked, q.Consumers, q.Durable
		pub, del := q.MsgStats.PublishDetails.Rate, q.MsgStats.DeliverDetails.Rate
		out.Queues = append(out.Queues, queueJSON{Name: q.Name, Exists: true, Messages: q.Ready, Unacked: &un,
			Consumers: &consumers, State: q.State, Durable: &durable, Arguments: q.Arguments,
			PublishPerS: &pub, ConsumePerS: &del})
	}
	return out, nil
}

// printQueues prints the table for whatever the source knows.
func printQueues(w io.Writer, out queuesJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch {
	case out.Transport == "redis":
		steps := []string{}
		if len(out.Queues) > 0 {
			for s := range out.Queues[0].ByPriority {
				steps = append(steps, s)
			}
			sortNumeric(steps)
		}
		fmt.Fprintf(tw, "queue\tmessages\tby priority %s\tunacked\toldest unacked\texchanges\n", strings.Join(steps, "/"))
		for _, q := range out.Queues {
			var by []string
			for _, s := range steps {
				by = append(by, strconv.FormatInt(q.ByPriority[s], 10))
			}
			oldest := "-"
			if q.OldestUnackedS != nil {
				oldest = shortDuration(time.Duration(*q.OldestUnackedS) * time.Second)
			}
			exchanges := strings.Join(q.Exchanges, ",")
			if exchanges == "" {
				exchanges = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", q.Name, q.Messages, strings.Join(by, "/"), *q.Unacked, oldest, exchanges)
		}
	case out.Transport == "filesystem" && out.Source != "named":
		fmt.Fprintln(tw, "queue\tmessages\tunacked")
		for _, q := range out.Queues {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", q.Name, q.Messages, *q.Unacked)
		}
	case out.Transport == "sqlalchemy":
		// Invisible rows: claimed by a consumer, or acknowledged by Python
		// Kombu (which never deletes a row).
		fmt.Fprintln(tw, "queue\tmessages\tinvisible")
		for _, q := range out.Queues {
			if !q.Exists {
				fmt.Fprintf(tw, "%s\t-\t-\n", q.Name)
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\n", q.Name, q.Messages, *q.Unacked)
		}
	case strings.HasPrefix(out.Source, "management"):
		fmt.Fprintln(tw, "queue\tmessages\tunacked\tconsumers\tpublish/s\tconsume/s\tstate")
		for _, q := range out.Queues {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%s\n", q.Name, q.Messages, *q.Unacked, *q.Consumers, *q.PublishPerS, *q.ConsumePerS, q.State)
		}
	default:
		fmt.Fprintln(tw, "queue\tmessages\tconsumers")
		for _, q := range out.Queues {
			if !q.Exists {
				fmt.Fprintf(tw, "%s\t-\t-\n", q.Name)
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\n", q.Name, q.Messages, *q.Consumers)
		}
	}
	tw.Flush()
	if out.OtherUnacked != nil && *out.OtherUnacked > 0 {
		fmt.Fprintf(w, "(%d more unacked record(s) belong to no queue listed)\n", *out.OtherUnacked)
	}
	if len(out.Queues) == 0 && out.Source != "named" {
		fmt.Fprintf(w, "(no queues: source %s)\n", out.Source)
	}
}

func sortNumeric(s []string) {
	slices.SortFunc(s, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
}

// purgedJSON is `kombu purge --json`.
type purgedJSON struct {
	Purged []purgedQueue `json:"purged"`
}

type purgedQueue struct {
	Queue    string `json:"queue"`
	Messages int    `json:"messages"`
}

func runPurge(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "purge", "[--url URL] [--json] NAME...")
	url := fs.String("url", "", urlHelp)
	jsonOut := fs.Bool("json", false, "print a JSON object")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErr(e, fs, "name at least one queue")
	}
	u, err := brokerURL(e, fs, *url)
	if err != nil {
		return err
	}
	conn, err := messaging.NewConnection(u, messaging.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return err
	}
	out := purgedJSON{Purged: []purgedQueue{}}
	for _, name := range fs.Args() {
		n, err := ch.PurgeQueue(ctx, name)
		if err != nil {
			return fmt.Errorf("purge %s: %w", name, err)
		}
		out.Purged = append(out.Purged, purgedQueue{Queue: name, Messages: n})
		if !*jsonOut {
			fmt.Fprintf(e.stdout, "%s: purged %d message(s)\n", name, n)
		}
	}
	if *jsonOut {
		return writeJSON(e.stdout, out)
	}
	return nil
}
