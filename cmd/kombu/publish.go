package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/kombu-go/kombu/messaging"
)

func init() {
	register(command{name: "publish", summary: "publish a message (or --count copies) to an exchange", run: runPublish})
}

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", "--url URL [--exchange NAME --exchange-type T] [--routing-key RK] [--declare-queue NAME[:BINDING_KEY]] [--priority N] [--serializer S] [--compression C] [--header k=v]... [--count N] BODY", stderr)
	url := fs.String("url", "memory://", "broker URL (memory://, redis://host:port/db, amqp://user:pass@host:port/vhost, ...)")
	var ex exchangeFlags
	fs.StringVar(&ex.name, "exchange", "", "exchange to publish to (default: the default exchange, routing by queue name)")
	fs.StringVar(&ex.kind, "exchange-type", "direct", "exchange type: direct, topic, fanout or headers")
	rk := fs.String("routing-key", "", "routing key (with the default exchange: the queue name)")
	var declare multiFlag
	fs.Var(&declare, "declare-queue", "declare this queue first, bound to the exchange with BINDING_KEY (default: the routing key); repeatable")
	priority := fs.Int("priority", 0, "message priority")
	ser := fs.String("serializer", "", "serializer: json, text, raw, msgpack, yaml (default: the body is sent as text/plain)")
	comp := fs.String("compression", "", "compression: gzip/zlib, bzip2, lzma/xz, zstd, brotli")
	var headers multiFlag
	fs.Var(&headers, "header", "application header k=v; repeatable")
	count := fs.Int("count", 1, "number of copies to publish")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "kombu publish: exactly one BODY argument is required")
		fs.Usage()
		return errUsage
	}
	exchange, err := ex.exchange()
	if err != nil {
		fmt.Fprintf(stderr, "kombu publish: %v\n", err)
		return errUsage
	}
	hdrs := map[string]any{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "kombu publish: bad --header %q (want k=v)\n", h)
			return errUsage
		}
		hdrs[k] = v
	}
	var decls []messaging.Declaration
	for _, d := range declare {
		name, key, found := strings.Cut(d, ":")
		if !found {
			key = *rk
		}
		decls = append(decls, messaging.NewQueue(name, exchange, key))
	}
	body, err := publishBody(fs.Arg(0), *ser)
	if err != nil {
		return err
	}
	conn, err := messaging.NewConnection(*url, messaging.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	prod, err := messaging.NewProducer(conn, messaging.ProducerOptions{Exchange: exchange, RoutingKey: *rk, Serializer: *ser, Compression: *comp})
	if err != nil {
		return err
	}
	opts := messaging.PublishOptions{Priority: *priority, Headers: hdrs, Declare: decls}
	pr := progress{w: stderr, quiet: *quiet || *count < 1000}
	for i := 0; i < *count; i++ {
		if err := prod.Publish(ctx, body, opts); err != nil {
			return fmt.Errorf("message %d: %w", i+1, err)
		}
		opts.Declare = nil // declared once
		pr.update("published %d/%d", i+1, *count)
	}
	pr.done()
	fmt.Fprintf(stdout, "published %d message(s) to exchange %q with routing key %q\n", *count, exchange.Name, *rk)
	return nil
}

// publishBody turns the BODY argument into what the serializer expects: a
// JSON document for json/msgpack/yaml (so structure survives), the text
// otherwise.
func publishBody(arg, ser string) (any, error) {
	switch ser {
	case "json", "msgpack", "yaml":
		v, err := decodeJSONArg(arg)
		if err != nil {
			return nil, fmt.Errorf("BODY must be JSON with --serializer %s: %w", ser, err)
		}
		return v, nil
	case "raw", "binary":
		return []byte(arg), nil
	}
	return arg, nil
}
