package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/kombu-go/kombu/messaging"
)

func init() {
	register(command{name: "consume", summary: "consume messages from a queue and print them", run: runConsume})
}

// consumedJSON is one line of `kombu consume --json` (a contract: fields are
// only ever added).
type consumedJSON struct {
	Body            any            `json:"body"`
	BodyEncoding    string         `json:"body_encoding,omitempty"`
	ContentType     string         `json:"content_type"`
	ContentEncoding string         `json:"content_encoding"`
	Exchange        string         `json:"exchange"`
	RoutingKey      string         `json:"routing_key"`
	Priority        int            `json:"priority"`
	Redelivered     bool           `json:"redelivered"`
	Headers         map[string]any `json:"headers"`
	DeliveryTag     string         `json:"delivery_tag"`
	Error           string         `json:"error,omitempty"`
}

func runConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("consume", "--url URL --queue NAME [--exchange NAME --exchange-type T --binding-key K] [--count N] [--timeout D] [--no-ack|--requeue|--reject] [--json]", stderr)
	url := fs.String("url", "memory://", "broker URL")
	queue := fs.String("queue", "", "queue to consume from (required)")
	var ex exchangeFlags
	fs.StringVar(&ex.name, "exchange", "", "declare the queue bound to this exchange")
	fs.StringVar(&ex.kind, "exchange-type", "direct", "exchange type: direct, topic, fanout or headers")
	bk := fs.String("binding-key", "", "binding key (default: the queue name)")
	count := fs.Int("count", 0, "stop after N messages (0: until --timeout or interrupted)")
	timeout := fs.Duration("timeout", 0, "stop when no message arrived for this long (0: wait forever)")
	noAck := fs.Bool("no-ack", false, "consume without acknowledgements")
	requeue := fs.Bool("requeue", false, "requeue each message instead of acking it")
	reject := fs.Bool("reject", false, "reject (drop) each message instead of acking it")
	jsonOut := fs.Bool("json", false, "print one JSON object per message per line")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *queue == "" {
		fmt.Fprintln(stderr, "kombu consume: --queue is required")
		fs.Usage()
		return errUsage
	}
	modes := 0
	for _, b := range []bool{*noAck, *requeue, *reject} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		fmt.Fprintln(stderr, "kombu consume: --no-ack, --requeue and --reject exclude each other")
		return errUsage
	}
	exchange, err := ex.exchange()
	if err != nil {
		fmt.Fprintf(stderr, "kombu consume: %v\n", err)
		return errUsage
	}
	key := *bk
	if key == "" {
		key = *queue
	}
	q := messaging.NewQueue(*queue, exchange, key)
	conn, err := messaging.NewConnection(*url, messaging.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()

	got := 0
	var settleErr error
	print := func(m *messaging.Message, decodeErr error) {
		got++
		if *jsonOut {
			line := messageJSON(m, decodeErr)
			b, err := json.Marshal(line)
			if err != nil {
				b, _ = json.Marshal(consumedJSON{Error: err.Error(), DeliveryTag: m.DeliveryTag()})
			}
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			fmt.Fprintf(stdout, "[%s] exchange=%q routing_key=%q content_type=%q redelivered=%v\n%s\n",
				m.DeliveryTag(), m.DeliveryInfo.Exchange, m.DeliveryInfo.RoutingKey, m.ContentType, m.DeliveryInfo.Redelivered, m.Body)
			if decodeErr != nil {
				fmt.Fprintf(stdout, "(undecodable: %v)\n", decodeErr)
			}
		}
		if *noAck {
			return
		}
		var err error
		switch {
		case *requeue:
			err = m.Requeue()
		case *reject:
			err = m.Reject()
		default:
			err = m.Ack()
		}
		if err != nil && settleErr == nil {
			settleErr = err
		}
	}
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        []messaging.Queue{q},
		NoAck:         *noAck,
		OnMessage:     func(m *messaging.Message) { print(m, nil) },
		OnDecodeError: func(m *messaging.Message, err error) { print(m, err) },
		PrefetchCount: 100,
	})
	if err != nil {
		return err
	}
	if err := cons.Consume(ctx); err != nil {
		return err
	}
	for *count == 0 || got < *count {
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if *timeout > 0 {
			dctx, cancel = context.WithTimeout(ctx, *timeout)
		}
		err := conn.DrainEvents(dctx)
		cancel()
		if settleErr != nil {
			return settleErr
		}
		if err != nil {
			if errors.Is(err, messaging.ErrTimeout) {
				break
			}
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	if err := cons.Cancel(context.Background()); err != nil && ctx.Err() == nil {
		return err
	}
	if !*jsonOut {
		fmt.Fprintf(stderr, "consumed %d message(s)\n", got)
	}
	return nil
}

// messageJSON renders a message; the body is decoded when the serializer
// allows (JSON values stay structured, text stays text), else base64.
func messageJSON(m *messaging.Message, decodeErr error) consumedJSON {
	out := consumedJSON{
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		Exchange: m.DeliveryInfo.Exchange, RoutingKey: m.DeliveryInfo.RoutingKey,
		Priority: m.Properties.Priority, Redelivered: m.DeliveryInfo.Redelivered,
		Headers: m.Headers, DeliveryTag: m.DeliveryTag(),
	}
	if out.Headers == nil {
		out.Headers = map[string]any{}
	}
	if decodeErr != nil {
		out.Error = decodeErr.Error()
	} else if v, err := m.Decode(); err == nil {
		switch b := v.(type) {
		case []byte:
			if utf8.Valid(b) {
				out.Body = string(b)
			} else {
				out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(b), "base64"
			}
		default:
			if _, err := json.Marshal(v); err == nil {
				out.Body = v
			}
		}
		if out.Body != nil {
			return out
		}
	}
	if utf8.Valid(m.Body) && decodeErr == nil {
		out.Body = string(m.Body)
	} else {
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return out
}

func decodeJSONArg(s string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}
