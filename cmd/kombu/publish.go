package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func init() {
	register(command{name: "publish", summary: "publish a message (or --count copies) to an exchange", run: runPublish})
}

// publishedJSON is `kombu publish --json` (a contract: fields are only
// ever added).
type publishedJSON struct {
	Published  int     `json:"published"`
	Exchange   string  `json:"exchange"`
	RoutingKey string  `json:"routing_key"`
	Mandatory  bool    `json:"mandatory"`
	Returned   int     `json:"returned"`
	Confirmed  bool    `json:"confirmed"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_s"`
}

func runPublish(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "publish", "[--url URL] [--exchange NAME --exchange-type T] [--routing-key RK] [--declare-queue NAME[:BINDING_KEY]]... [flags] BODY")
	url := fs.String("url", "", urlHelp)
	var ex exchangeFlags
	fs.StringVar(&ex.name, "exchange", "", "exchange to publish to (default: the default exchange, routing by queue name)")
	fs.StringVar(&ex.kind, "exchange-type", "direct", "exchange type: direct, topic, fanout or headers")
	rk := fs.String("routing-key", "", "routing key (with the default exchange: the queue name)")
	declare := fs.StringArray("declare-queue", nil, "declare this durable queue first, bound to the exchange with BINDING_KEY (default: the routing key); repeatable")
	queueArgs := fs.StringArray("queue-arg", nil, "argument of the declared queues, k=v (x-max-priority=10; numbers and true/false are typed, '\"10\"' is a string); repeatable")
	bindingArgs := fs.StringArray("binding-arg", nil, "argument of their bindings, k=v (x-match=all for a headers exchange); repeatable")
	priority := fs.Int("priority", 0, "message priority (AMQP: needs a queue with x-max-priority; Redis: 0-9, lower first)")
	expiration := fs.String("expiration", "", "message time to live: seconds (1.5) or a duration (90s, 500ms)")
	correlationID := fs.String("correlation-id", "", "correlation_id property")
	replyTo := fs.String("reply-to", "", "reply_to property (a queue name)")
	messageID := fs.String("message-id", "", "message_id property")
	ser := fs.String("serializer", "", "serializer: json, msgpack, yaml (BODY is then JSON), text, raw (default: BODY is sent as text/plain)")
	comp := fs.String("compression", "", "compression: gzip/zlib, bzip2, lzma/xz, zstd, brotli")
	headers := fs.StringArray("header", nil, "application header k=v (the value is a string); repeatable")
	count := fs.Int("count", 1, "number of copies to publish")
	mandatory := fs.Bool("mandatory", false, "fail (exit 1) if the broker cannot route a message to any queue")
	confirm := fs.Bool("confirm", false, "wait for the broker to confirm each message (AMQP publisher confirms; Redis and memory always wait for the reply)")
	jsonOut := fs.Bool("json", false, "print a JSON object instead of a sentence")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr(e, fs, "exactly one BODY argument is required (got %d; use -- before a body that starts with '-')", fs.NArg())
	}
	if *count < 1 {
		return usageErr(e, fs, "--count must be at least 1")
	}
	exchange, err := ex.exchange()
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	hdrs := map[string]any{}
	for _, h := range *headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return usageErr(e, fs, "bad --header %q (want k=v)", h)
		}
		hdrs[k] = v
	}
	qargs, err := parseArgs("--queue-arg", *queueArgs)
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	bargs, err := parseArgs("--binding-arg", *bindingArgs)
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	if (qargs != nil || bargs != nil) && len(*declare) == 0 {
		return usageErr(e, fs, "--queue-arg and --binding-arg apply to the queues of --declare-queue; name one")
	}
	ttl, err := parseExpiration(*expiration)
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	var decls []messaging.Declaration
	for _, d := range *declare {
		name, key, found := strings.Cut(d, ":")
		if !found {
			key = *rk
		}
		q := messaging.NewQueue(name, exchange, key)
		q.QueueArguments, q.BindingArguments = qargs, bargs
		decls = append(decls, q)
	}
	body, err := publishBody(fs.Arg(0), *ser)
	if err != nil {
		return usageErr(e, fs, "%v", err)
	}
	u, err := brokerURL(e, fs, *url)
	if err != nil {
		return err
	}
	var topts map[string]any
	if *confirm {
		topts = map[string]any{"confirm_publish": true}
	}
	conn, err := messaging.NewConnection(u, messaging.Options{TransportOptions: topts})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		return err
	}
	var rw *returnWatch
	if *mandatory {
		if rw, err = watchReturns(conn, ch); err != nil {
			return err
		}
	}
	prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Channel: ch, Exchange: exchange, RoutingKey: *rk, Serializer: *ser, Compression: *comp})
	if err != nil {
		return err
	}
	opts := messaging.PublishOptions{Priority: *priority, Headers: hdrs, Declare: decls, Mandatory: *mandatory,
		Expiration: ttl, CorrelationID: *correlationID, ReplyTo: *replyTo, MessageID: *messageID}
	pr := newProgress(e, *quiet)
	start := time.Now()
	for i := 0; i < *count; i++ {
		if err := prod.Publish(ctx, body, opts); err != nil {
			pr.done()
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted after publishing %d of %d message(s)", i, *count)
			}
			return fmt.Errorf("message %d: %w", i+1, err)
		}
		opts.Declare = nil // declared once
		pr.update("publish", i+1, *count)
	}
	pr.done()
	returned := 0
	if rw != nil {
		// Every return the broker sent for these messages is in hand
		// before the count is read.
		if err := rw.barrier(ctx); err != nil {
			return fmt.Errorf("waiting for returned messages: %w", err)
		}
		returned = rw.count()
	}
	elapsed := time.Since(start)
	if *jsonOut {
		out := publishedJSON{Published: *count, Exchange: exchange.Name, RoutingKey: *rk, Mandatory: *mandatory,
			Returned: returned, Confirmed: *confirm, Seconds: elapsed.Seconds()}
		if s := elapsed.Seconds(); s > 0 {
			out.PerSecond = float64(*count) / s
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		note := ""
		if *confirm {
			note = " (confirmed)"
		}
		if returned > 0 {
			note = fmt.Sprintf(": %d returned as unroutable", returned)
		}
		fmt.Fprintf(e.stdout, "published %d message(s) to exchange %q with routing key %q%s\n", *count, exchange.Name, *rk, note)
	}
	if returned > 0 {
		return fmt.Errorf("%d of %d message(s) returned by the broker: %s", returned, *count, rw.first())
	}
	return nil
}

// parseExpiration reads --expiration: seconds as a number (Kombu's
// expiration), or a Go duration.
func parseExpiration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("--expiration must be positive, not %q", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad --expiration %q (seconds, or a duration such as 90s or 500ms)", s)
	}
	if d < time.Millisecond {
		return 0, fmt.Errorf("--expiration %q is below the property's unit, a millisecond", s)
	}
	return d, nil
}

// publishBody turns the BODY argument into what the serializer expects: a
// JSON document for json/msgpack/yaml (so structure survives), the text
// otherwise. Numbers become int64 or float64 for msgpack and yaml, which
// would otherwise write json.Number as a string.
func publishBody(arg, ser string) (any, error) {
	switch ser {
	case "json", "msgpack", "yaml":
		v, err := decodeJSONArg(arg)
		if err != nil {
			return nil, fmt.Errorf("BODY must be JSON with --serializer %s: %w", ser, err)
		}
		if ser != "json" {
			v = plainNumbers(v)
		}
		return v, nil
	case "raw", "binary":
		return []byte(arg), nil
	}
	return arg, nil
}

// plainNumbers replaces the json.Numbers of a decoded JSON tree: integers
// that fit become int64 (uint64 above it), other numbers float64. Integers
// beyond uint64 become float64 too: msgpack and yaml have nothing larger
// that Python reads as a number.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return u
			}
		}
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
	}
	return v
}
