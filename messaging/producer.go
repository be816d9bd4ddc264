package messaging

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// ProducerOptions configure a [Producer] (Kombu's Producer arguments).
type ProducerOptions struct {
	// Channel to publish on. Default: the connection's default channel,
	// taken on each publish (so a reconnection is followed).
	Channel transport.Channel
	// Exchange is the default exchange of Publish. Default: the default
	// exchange "" (which routes by queue name).
	Exchange Exchange
	// RoutingKey is the default routing key. Default: "".
	RoutingKey string
	// Serializer is the default serializer name. Default: the registry's
	// default (json), except that a string or []byte body with no
	// serializer goes as text/plain or application/data, as in Kombu.
	Serializer string
	// Compression is the default compression method ("gzip", "zstd" ...).
	// Default: none.
	Compression string
	// NoDeclare turns off the automatic declaration of Exchange before
	// publishing (Kombu's auto_declare=False). Default: the exchange is
	// declared once per connection (through the MaybeDeclare cache).
	NoDeclare bool
	// Confirm says when Publish waits for the broker's publisher confirm.
	// Default: ConfirmAuto, which confirms the messages that may reach a
	// quorum queue or a stream (see [Confirm]).
	Confirm Confirm
	// OnReturn receives messages the broker returned (mandatory and
	// unroutable), on the hub goroutine, for channels that can return them
	// (transport.Returner: AMQP, memory). It is registered on the channel
	// given in Channel, or on the default channel at the first publish.
	OnReturn func(*transport.Returned)
}

// PublishOptions are the per-message settings of Publish (Kombu's publish
// keyword arguments). The zero value publishes with the producer's
// defaults.
type PublishOptions struct {
	// Exchange overrides the producer's exchange when non-nil.
	Exchange *Exchange
	// RoutingKey overrides the producer's routing key when non-empty.
	RoutingKey string
	// DeliveryMode: Transient or Persistent. Default: the exchange's, else
	// Persistent.
	DeliveryMode DeliveryMode
	// Mandatory and Immediate are the basic.publish flags (ignored by
	// Redis, as in Kombu).
	Mandatory bool
	Immediate bool
	// Priority of the message (AMQP: 0..255; virtual transports: 0..9).
	Priority int
	// ContentType, when set, sends the body without serializing it: a
	// string is sent as its bytes with ContentEncoding (default utf-8), a
	// []byte with ContentEncoding (default binary). Other bodies are an
	// error.
	ContentType     string
	ContentEncoding string
	// Serializer overrides the producer's serializer.
	Serializer string
	// Compression overrides the producer's compression.
	Compression string
	// Headers are application headers; Publish copies them.
	Headers map[string]any
	// Expiration is the message TTL, sent as whole milliseconds in the
	// expiration property (Kombu's str(int(expiration*1000))). 0: none.
	Expiration time.Duration
	// ReplyTo, CorrelationID, MessageID, Type, AppID, UserID and Timestamp
	// are the message properties of the same names. Pass a Queue's Name as
	// ReplyTo.
	ReplyTo       string
	CorrelationID string
	MessageID     string
	Type          string
	AppID         string
	UserID        string
	Timestamp     time.Time
	// Properties holds other properties (Kombu's **properties).
	Properties map[string]any
	// Declare lists entities to declare before publishing (through the
	// MaybeDeclare cache).
	Declare []Declaration
	// Retry publishes through Connection.Ensure with RetryPolicy, so that
	// connection errors reconnect and retry. Unlike Kombu, the policy is
	// not copied into the connection's transport options.
	Retry       bool
	RetryPolicy RetryPolicy
	// Confirm overrides the producer's Confirm for this message when it is
	// not ConfirmAuto.
	Confirm Confirm
}

// Producer publishes messages (Kombu's Producer). Publish is safe for
// concurrent use from any goroutine, but not from a hub callback when the
// transport needs the hub to publish. Create one with [NewProducer].
type Producer struct {
	conn *Connection
	opts ProducerOptions

	// mu guards ch and returnsOn: a reconnection replaces the channel
	// while other goroutines publish.
	mu        sync.Mutex
	ch        transport.Channel
	returnsOn transport.Channel
}

// NewProducer returns a producer on conn. It checks the serializer and
// compression names (errors match [ErrNotInstalled] or
// compression.ErrUnknownCodec) but does no I/O.
func NewProducer(conn *Connection, opts ProducerOptions) (*Producer, error) {
	if conn == nil {
		return nil, fmt.Errorf("messaging: NewProducer: nil connection")
	}
	if err := checkCodecs(conn, opts.Serializer, opts.Compression); err != nil {
		return nil, err
	}
	return &Producer{conn: conn, opts: opts, ch: opts.Channel}, nil
}

func checkCodecs(conn *Connection, ser, comp string) error {
	if ser != "" && ser != "raw" {
		if _, ok := conn.ser.Lookup(ser); !ok {
			_, _, _, err := conn.ser.Dumps(nil, ser)
			return err
		}
	}
	if comp != "" {
		if _, err := conn.comp.ContentType(comp); err != nil {
			return err
		}
	}
	return nil
}

// Connection returns the producer's connection.
func (p *Producer) Connection() *Connection { return p.conn }

// Exchange returns the producer's default exchange.
func (p *Producer) Exchange() Exchange { return p.opts.Exchange }

// channel returns the channel to publish on.
func (p *Producer) channel(ctx context.Context) (transport.Channel, error) {
	p.mu.Lock()
	ch := p.ch
	p.mu.Unlock()
	if ch == nil {
		var err error
		if ch, err = p.conn.DefaultChannel(ctx); err != nil {
			return nil, err
		}
	}
	if p.opts.OnReturn != nil {
		p.mu.Lock()
		if p.returnsOn != ch {
			if r, ok := ch.(transport.Returner); ok {
				r.OnReturn(p.opts.OnReturn)
			}
			p.returnsOn = ch
		}
		p.mu.Unlock()
	}
	return ch, nil
}

// Revive makes the producer publish on ch from now on (Kombu's revive).
// Connection.Ensure calls it after a reconnection for producers created
// with an explicit channel.
func (p *Producer) Revive(ch transport.Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opts.Channel != nil {
		p.ch = ch
	}
}

// Declare declares the producer's exchange, if it has a name (Kombu's
// declare).
func (p *Producer) Declare(ctx context.Context) error {
	ch, err := p.channel(ctx)
	if err != nil {
		return err
	}
	return p.opts.Exchange.Declare(ctx, ch)
}

// Prepare builds the transport message for body without publishing it,
// following Kombu's _prepare and publish rules: serialization (or the
// body as is when ContentType is set), compression into the "compression"
// header, the delivery mode, the expiration in milliseconds, and the
// properties. It also returns the exchange and routing key to publish to.
func (p *Producer) Prepare(body any, opts PublishOptions) (*transport.Message, string, string, error) {
	m := new(transport.Message)
	ex, rk, err := p.prepare(m, body, &opts)
	if err != nil {
		return nil, "", "", err
	}
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	return m, ex, rk, nil
}

// prepare is Prepare into m, except that a message without headers gets
// none (nil): it travels as the empty map does ("headers": {} in Kombu's
// envelope, no header table on AMQP), and consumers see an empty map
// either way (newMessage), without an allocation per message here.
func (p *Producer) prepare(m *transport.Message, body any, opts *PublishOptions) (string, string, error) {
	ex, rk, _, err := p.prepareInto(m, body, opts, nil)
	return ex, rk, err
}

// prepareInto is prepare, serializing a value (not a string or []byte)
// into *slab when slab is not nil and the message is not mandatory (a
// returned message is handed to the application later, so its body must
// not be reused). inSlab reports a body left in *slab (not compressed).
func (p *Producer) prepareInto(m *transport.Message, body any, opts *PublishOptions, slab *[]byte) (exchange, routingKey string, inSlab bool, err error) {
	ex := &p.opts.Exchange
	if opts.Exchange != nil {
		ex = opts.Exchange
	}
	rk := opts.RoutingKey
	if rk == "" {
		rk = p.opts.RoutingKey
	}
	var headers map[string]any
	if len(opts.Headers) > 0 {
		headers = maps.Clone(opts.Headers)
	}
	var ct, enc string
	var data []byte
	if slab != nil && opts.ContentType == "" && !opts.Mandatory && slabbable(body) {
		start := len(*slab)
		var out []byte
		ct, enc, out, err = p.conn.ser.AppendDumps(*slab, body, firstNonEmpty(opts.Serializer, p.opts.Serializer))
		if err == nil {
			*slab, data, inSlab = out, out[start:len(out):len(out)], true
		}
	} else {
		ct, enc, data, err = p.serialize(body, opts)
	}
	if err != nil {
		return "", "", false, err
	}
	if method := firstNonEmpty(opts.Compression, p.opts.Compression); method != "" {
		out, cct, err := p.conn.comp.Compress(data, method)
		if err != nil {
			return "", "", false, err
		}
		data, inSlab = out, false
		if headers == nil {
			headers = map[string]any{}
		}
		headers["compression"] = cct
	}
	mode := opts.DeliveryMode
	if mode == 0 {
		mode = ex.DeliveryMode
	}
	if mode == 0 {
		mode = Persistent
	}
	*m = transport.Message{Body: data, ContentType: ct, ContentEncoding: enc, Headers: headers,
		Properties: transport.Properties{
			CorrelationID: opts.CorrelationID,
			ReplyTo:       opts.ReplyTo,
			MessageID:     opts.MessageID,
			Type:          opts.Type,
			AppID:         opts.AppID,
			UserID:        opts.UserID,
			Timestamp:     opts.Timestamp,
			DeliveryMode:  uint8(mode),
			Priority:      opts.Priority,
			Extra:         maps.Clone(opts.Properties),
		}}
	if opts.Expiration > 0 {
		m.Properties.Expiration = strconv.FormatInt(opts.Expiration.Milliseconds(), 10)
	}
	return ex.Name, rk, inSlab, nil
}

// slabbable reports a body that a serializer encodes: strings and []byte
// are sent as they are (or converted once), and gain nothing from a slab.
func slabbable(body any) bool {
	switch body.(type) {
	case string, []byte, nil:
		return false
	}
	return true
}

// serialize is Kombu's _prepare without compression.
func (p *Producer) serialize(body any, opts *PublishOptions) (string, string, []byte, error) {
	if opts.ContentType == "" {
		return p.conn.ser.Dumps(body, firstNonEmpty(opts.Serializer, p.opts.Serializer))
	}
	switch b := body.(type) {
	case string:
		return opts.ContentType, firstNonEmpty(opts.ContentEncoding, serializer.EncodingUTF8), []byte(b), nil
	case []byte:
		return opts.ContentType, firstNonEmpty(opts.ContentEncoding, serializer.EncodingBinary), b, nil
	case nil:
		return opts.ContentType, firstNonEmpty(opts.ContentEncoding, serializer.EncodingBinary), nil, nil
	}
	return "", "", nil, &serializer.EncodeError{Serializer: opts.ContentType,
		Err: fmt.Errorf("with ContentType set the body must be a string or []byte, not %T", body)}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Publish serializes body and publishes it (Kombu's publish). body may be
// any value the serializer encodes (json by default), or a string or
// []byte (see PublishOptions.ContentType and Serializer). The producer's
// exchange is declared first unless NoDeclare (once per connection), as
// are the entities of opts.Declare. With opts.Retry, connection errors
// reconnect and retry under opts.RetryPolicy.
//
// Safe for concurrent use. ctx bounds the publish and its retries.
func (p *Producer) Publish(ctx context.Context, body any, opts PublishOptions) error {
	m := new(transport.Message)
	exchange, rk, err := p.prepare(m, body, &opts)
	if err != nil {
		return err
	}
	declare := p.declareList(&opts)
	popts := transport.PublishOptions{Mandatory: opts.Mandatory, Immediate: opts.Immediate,
		Confirm: p.confirmFor(&opts, declare, exchange, rk)}
	publish := func(ctx context.Context, ch transport.Channel) error {
		for _, d := range declare {
			if _, err := p.conn.MaybeDeclare(ctx, ch, d); err != nil {
				return err
			}
		}
		return ch.Publish(ctx, m, exchange, rk, popts)
	}
	if !opts.Retry {
		ch, err := p.channel(ctx)
		if err != nil {
			return err
		}
		return publish(ctx, ch)
	}
	return p.ensure(ctx, opts.RetryPolicy, publish)
}

// ensure runs fn through Connection.Ensure on the producer's channel,
// reviving the producer after a reconnection.
func (p *Producer) ensure(ctx context.Context, policy RetryPolicy, fn func(ctx context.Context, ch transport.Channel) error) error {
	onRevive := policy.OnRevive
	policy.OnRevive = func(ch transport.Channel) {
		p.Revive(ch)
		if onRevive != nil {
			onRevive(ch)
		}
	}
	return p.conn.Ensure(ctx, policy, func(ctx context.Context, def transport.Channel) error {
		ch, err := p.channel(ctx)
		if err != nil {
			return err
		}
		return fn(ctx, ch)
	})
}

// declareList is opts.Declare plus the producer's exchange when it is
// auto-declared (Kombu's step 5).
func (p *Producer) declareList(opts *PublishOptions) []Declaration {
	declare := opts.Declare
	if !p.opts.NoDeclare && p.opts.Exchange.Name != "" {
		has := slices.ContainsFunc(declare, func(d Declaration) bool { return d.cacheKey() == p.opts.Exchange.cacheKey() })
		if !has {
			declare = append(slices.Clip(declare), p.opts.Exchange)
		}
	}
	return declare
}

// Close does nothing (Kombu's Producer.close): a producer holds no
// resource of its own. It exists for symmetry with Consumer.
func (p *Producer) Close() error { return nil }
