package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

func init() {
	register(command{name: "consume", summary: "consume messages from a queue and print them", run: runConsume})
}

// settleMode is what consume does with a printed message.
type settleMode int

const (
	settleAck settleMode = iota
	settleNoAck
	settleRequeue
	settleReject
)

func runConsume(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "consume", "[--url URL] --queue NAME [--count N] [--timeout D] [--no-ack|--requeue|--reject] [--accept S,...] [--declare [--exchange NAME --exchange-type T --binding-key K]] [--json]")
	url := fs.String("url", "", urlHelp)
	queue := fs.String("queue", "", "queue to consume from (required)")
	declare := fs.Bool("declare", false, "declare the queue (durable), and bind it to --exchange, before consuming; without it the queue must exist (RabbitMQ: checked with a passive declare, exit 1 if missing)")
	var ex exchangeFlags
	fs.StringVar(&ex.name, "exchange", "", "with --declare: bind the queue to this exchange")
	fs.StringVar(&ex.kind, "exchange-type", "direct", "with --declare: exchange type: direct, topic, fanout or headers")
	bk := fs.String("binding-key", "", "with --declare: binding key (default: the queue name; '' is an empty key)")
	queueArgs := fs.StringArray("queue-arg", nil, "with --declare: queue argument k=v (as for publish); repeatable")
	bindingArgs := fs.StringArray("binding-arg", nil, "with --declare: binding argument k=v; repeatable")
	count := fs.Int("count", 0, "stop after printing N messages, leaving every other message in the queue (0: until --timeout or interrupted)")
	prefetch := fs.Int("prefetch", 100, "unacknowledged messages in flight (at most --count)")
	timeout := fs.Duration("timeout", 0, "stop when no message arrived for this long (0: wait forever)")
	noAck := fs.Bool("no-ack", false, "consume without acknowledgements (with --count, each printed message is acked instead, so that nothing beyond N is taken)")
	requeue := fs.Bool("requeue", false, "put each printed message back (with --count: all of them, at exit)")
	reject := fs.Bool("reject", false, "reject (drop) each message instead of acking it")
	accept := fs.StringSlice("accept", nil, "serializers or content types to decode, comma-separated (default json,text,raw; add msgpack, yaml)")
	jsonOut := fs.Bool("json", false, "print one JSON object per message per line")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(e, fs, "unexpected argument %q (the queue is given with --queue)", fs.Arg(0))
	}
	if *queue == "" {
		return usageErr(e, fs, "--queue is required")
	}
	mode, n := settleAck, 0
	for m, on := range map[settleMode]bool{settleNoAck: *noAck, settleRequeue: *requeue, settleReject: *reject} {
		if on {
			mode, n = m, n+1
		}
	}
	if n > 1 {
		return usageErr(e, fs, "--no-ack, --requeue and --reject exclude each other")
	}
	if *count < 0 || *prefetch < 0 || *timeout < 0 {
		return usageErr(e, fs, "--count, --prefetch and --timeout must not be negative")
	}
	if !*declare {
		for _, f := range []string{"exchange", "exchange-type", "binding-key", "queue-arg", "binding-arg"} {
			if fs.Changed(f) {
				return usageErr(e, fs, "--%s declares: add --declare (without it consume creates nothing and the queue must exist)", f)
			}
		}
	}
	exchange, err := ex.exchange()
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	qargs, err := parseArgs("--queue-arg", *queueArgs)
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	bargs, err := parseArgs("--binding-arg", *bindingArgs)
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	acc := acceptList(*accept)
	if acc != nil {
		if _, err := serializer.Default().PrepareAccept(acc); err != nil {
			return usageErr(e, fs, "--accept: %v", err)
		}
	}
	key := *bk
	if !fs.Changed("binding-key") {
		key = *queue
	}
	u, err := brokerURL(e, fs, *url)
	if err != nil {
		return err
	}
	q := messaging.NewQueue(*queue, exchange, key)
	q.QueueArguments, q.BindingArguments = qargs, bargs
	q.NoDeclare = !*declare

	conn, err := messaging.NewConnection(u, messaging.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	if !*declare {
		if err := checkQueue(ctx, conn, q); err != nil {
			return err
		}
	}
	c := &consumeRun{e: e, json: *jsonOut, mode: mode, limit: *count}
	// With --count the consumer always acknowledges (--no-ack is emulated
	// by acking on print): a no-ack consumer takes whatever the broker
	// pushes, beyond any count.
	consumerNoAck := mode == settleNoAck && *count == 0
	pf := *prefetch
	if *count > 0 && (pf == 0 || pf > *count || mode == settleRequeue) {
		// Requeue holds every printed message until exit: it needs room for
		// all N.
		pf = *count
	}
	copts := messaging.ConsumerOptions{
		Queues:        []messaging.Queue{q},
		NoAck:         consumerNoAck,
		OnMessage:     func(m *messaging.Message) { c.deliver(m, nil) },
		OnDecodeError: func(m *messaging.Message, err error) { c.deliver(m, err) },
		PrefetchCount: pf,
		Accept:        acc,
	}
	cons, err := messaging.NewConsumer(conn, copts)
	if err != nil {
		return err
	}
	c.accepts = cons.Accept()
	if err := cons.Consume(ctx); err != nil {
		return err
	}
	for !c.full() {
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if *timeout > 0 {
			dctx, cancel = context.WithTimeout(ctx, *timeout)
		}
		err := conn.DrainEvents(dctx)
		cancel()
		if c.err != nil {
			break
		}
		if err != nil {
			if errors.Is(err, messaging.ErrTimeout) || ctx.Err() != nil {
				break
			}
			return err
		}
	}
	if err := cons.Cancel(context.WithoutCancel(ctx)); err != nil && ctx.Err() == nil && c.err == nil {
		c.err = err
	}
	// The messages held by --requeue --count go back now; whatever else
	// was delivered and not printed was put back as it arrived, and what
	// the transport still holds goes back when the connection closes.
	for _, m := range c.held {
		if err := m.Requeue(); err != nil && c.err == nil {
			c.err = err
		}
	}
	if c.err != nil {
		return c.err
	}
	if !*jsonOut {
		if *count > 0 {
			fmt.Fprintf(e.stderr, "consumed %d of %d message(s)\n", c.printed, *count)
		} else {
			fmt.Fprintf(e.stderr, "consumed %d message(s)\n", c.printed)
		}
	}
	return nil
}

// checkQueue makes sure the queue exists without creating it. On Redis an
// empty queue does not exist (Kombu's rule), so nothing can be checked
// there and nothing is created by consuming either.
func checkQueue(ctx context.Context, conn *messaging.Connection, q messaging.Queue) error {
	if driverOf(conn) == "redis" {
		return nil
	}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return err
	}
	if _, err := q.DeclareQueue(ctx, ch, true); err != nil {
		if errors.Is(err, transport.ErrNotFound) {
			return fmt.Errorf("queue %q does not exist (consume declares nothing without --declare): %w", q.Name, err)
		}
		return err
	}
	return nil
}

// acceptList expands --accept: nil keeps the consumer's default.
func acceptList(names []string) []string {
	var out []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// consumeRun is one consume's state; deliver runs on the hub goroutine,
// which is the goroutine of DrainEvents here.
type consumeRun struct {
	e       *env
	json    bool
	mode    settleMode
	limit   int
	accepts []string

	printed int
	held    []*messaging.Message
	err     error
}

func (c *consumeRun) full() bool { return c.limit > 0 && c.printed >= c.limit }

func (c *consumeRun) deliver(m *messaging.Message, decodeErr error) {
	if c.full() || c.err != nil {
		// Delivered within the prefetch window after the last message to
		// print: back to the queue, untouched.
		if !m.Acknowledged() {
			_ = m.Requeue()
		}
		return
	}
	c.printed++
	c.print(m, decodeErr)
	var err error
	switch {
	case c.mode == settleRequeue && c.limit > 0:
		c.held = append(c.held, m)
	case c.mode == settleRequeue:
		err = m.Requeue()
	case c.mode == settleReject:
		err = m.Reject()
	default:
		err = m.Ack() // nothing to do for a no-ack consumer's message
	}
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("settling message %s: %w", m.DeliveryTag(), err)
	}
}

func (c *consumeRun) print(m *messaging.Message, decodeErr error) {
	out := c.e.stdout
	if c.json {
		line := messageJSON(m, decodeErr)
		if err := writeJSON(out, line); err != nil {
			_ = writeJSON(out, consumedJSON{Error: err.Error(), DeliveryTag: m.DeliveryTag(), Headers: map[string]any{}})
		}
		return
	}
	fmt.Fprintf(out, "[%s] exchange=%q routing_key=%q content_type=%q redelivered=%v\n%s\n",
		m.DeliveryTag(), m.DeliveryInfo.Exchange, m.DeliveryInfo.RoutingKey, m.ContentType, m.DeliveryInfo.Redelivered, textBody(m, decodeErr))
	if decodeErr != nil {
		fmt.Fprintf(out, "(undecodable: %v)\n", decodeErr)
		return
	}
	if _, err := m.Decode(); err != nil {
		fmt.Fprintf(out, "(not decoded: %v; --accept lists what to decode, now %s)\n", err, strings.Join(c.accepts, ","))
	}
}

// textBody is the body as the text form prints it: as it is when it is
// text; a binary body (msgpack ...) as JSON when it decodes, else base64,
// so that a terminal never receives raw bytes.
func textBody(m *messaging.Message, decodeErr error) string {
	if utf8.Valid(m.Body) {
		return string(m.Body)
	}
	if decodeErr == nil {
		if v, err := m.Decode(); err == nil {
			if b, err := json.Marshal(v); err == nil {
				return string(b)
			}
		}
	}
	return "(binary, base64) " + base64.StdEncoding.EncodeToString(m.Body)
}
