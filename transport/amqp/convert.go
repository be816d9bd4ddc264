package amqp

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/transport"
)

// toTable converts Kombu headers or x- arguments to an AMQP field table.
// Nested maps become tables and slices become arrays.
func toTable(m map[string]any) (amqp091.Table, error) {
	if m == nil {
		return nil, nil
	}
	t := make(amqp091.Table, len(m))
	for k, v := range m {
		f, err := toField(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		t[k] = f
	}
	return t, nil
}

// toField converts one value to a type amqp091 can encode. Integers become
// int64 (RabbitMQ compares integer arguments by value across widths), floats
// float64.
func toField(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, []byte, int64, float64, time.Time, amqp091.Decimal:
		return x, nil
	case int:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("%w: %d overflows int64", ErrBadTableValue, x)
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("%w: %d overflows int64", ErrBadTableValue, x)
		}
		return int64(x), nil
	case float32:
		return float64(x), nil
	case time.Duration:
		return int64(x / time.Millisecond), nil
	case map[string]any:
		return toTable(x)
	case amqp091.Table:
		return toTable(x)
	case map[string]string:
		t := make(amqp091.Table, len(x))
		for k, s := range x {
			t[k] = s
		}
		return t, nil
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			f, err := toField(e)
			if err != nil {
				return nil, fmt.Errorf("index %d: %w", i, err)
			}
			a[i] = f
		}
		return a, nil
	case []string:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = e
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrBadTableValue, v)
}

// fromTable converts a received field table to Kombu's JSON-compatible
// headers: integers become int64, floats float64, byte arrays string,
// decimals float64, tables map[string]any, arrays []any. Timestamps stay
// time.Time.
func fromTable(t amqp091.Table) map[string]any {
	if t == nil {
		return nil
	}
	m := make(map[string]any, len(t))
	for k, v := range t {
		m[k] = fromField(v)
	}
	return m
}

func fromField(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	case amqp091.Decimal:
		return float64(x.Value) / math.Pow10(int(x.Scale))
	case amqp091.Table:
		return fromTable(x)
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = fromField(e)
		}
		return a
	}
	return v
}

// toPublishing builds the AMQP message: the body goes as raw bytes, Kombu's
// properties become basic properties, its headers the headers table.
func toPublishing(m *transport.Message) (amqp091.Publishing, error) {
	h, err := toTable(m.Headers)
	if err != nil {
		return amqp091.Publishing{}, fmt.Errorf("amqp: headers: %w", err)
	}
	p := &m.Properties
	mode := p.DeliveryMode
	if mode == 0 {
		mode = 2
	}
	return amqp091.Publishing{
		Headers:         h,
		ContentType:     m.ContentType,
		ContentEncoding: m.ContentEncoding,
		DeliveryMode:    mode,
		Priority:        uint8(min(max(p.Priority, 0), 255)),
		CorrelationId:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		MessageId:       p.MessageID,
		Timestamp:       p.Timestamp,
		Type:            p.Type,
		UserId:          p.UserID,
		AppId:           p.AppID,
		Body:            m.Body,
	}, nil
}

// fromDelivery converts a delivery (consume or get). tag is the channel's
// transport-level delivery tag.
func fromDelivery(d *amqp091.Delivery, tag uint64, queue string) *transport.Message {
	m := &transport.Message{
		Body:            d.Body,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		Headers:         fromTable(d.Headers),
		Properties: transport.Properties{
			CorrelationID: d.CorrelationId,
			ReplyTo:       d.ReplyTo,
			MessageID:     d.MessageId,
			Type:          d.Type,
			AppID:         d.AppId,
			UserID:        d.UserId,
			Timestamp:     d.Timestamp,
			DeliveryMode:  receivedMode(d.DeliveryMode),
			Expiration:    d.Expiration,
			Priority:      int(d.Priority),
		},
		DeliveryInfo: transport.DeliveryInfo{
			Exchange:    d.Exchange,
			RoutingKey:  d.RoutingKey,
			Redelivered: d.Redelivered,
			ConsumerTag: d.ConsumerTag,
			DeliveryTag: strconv.FormatUint(tag, 10),
			Queue:       queue,
		},
	}
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	return m
}

// receivedMode keeps an absent delivery mode transient (AMQP's meaning)
// rather than letting it read as the contract's default, persistent.
func receivedMode(mode uint8) uint8 {
	if mode == 0 {
		return 1
	}
	return mode
}

func fromReturn(r *amqp091.Return) *transport.Returned {
	m := &transport.Message{
		Body:            r.Body,
		ContentType:     r.ContentType,
		ContentEncoding: r.ContentEncoding,
		Headers:         fromTable(r.Headers),
		Properties: transport.Properties{
			CorrelationID: r.CorrelationId,
			ReplyTo:       r.ReplyTo,
			MessageID:     r.MessageId,
			Type:          r.Type,
			AppID:         r.AppId,
			UserID:        r.UserId,
			Timestamp:     r.Timestamp,
			DeliveryMode:  receivedMode(r.DeliveryMode),
			Expiration:    r.Expiration,
			Priority:      int(r.Priority),
		},
		DeliveryInfo: transport.DeliveryInfo{Exchange: r.Exchange, RoutingKey: r.RoutingKey},
	}
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	return &transport.Returned{
		ReplyCode:  int(r.ReplyCode),
		ReplyText:  r.ReplyText,
		Exchange:   r.Exchange,
		RoutingKey: r.RoutingKey,
		Message:    m,
	}
}

// errChannelClosed is the cause of an operation cut short because its AMQP
// channel closed under it (the transport reopens the channel).
var errChannelClosed = errors.New("amqp: channel closed by the broker")

// isHardCode reports the AMQP reply codes that close the connection (hard
// errors); the others close only the channel.
func isHardCode(code int) bool {
	switch code {
	case 320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541:
		return true
	}
	return false
}

// brokerError maps an amqp091 error to the transport vocabulary. connLost
// says whether the connection is gone (then amqp091's "not open" means a
// lost connection rather than a closed channel).
func brokerError(err error, connLost bool) error {
	if err == nil {
		return nil
	}
	var ae *amqp091.Error
	if errors.As(err, &ae) {
		if ae == amqp091.ErrClosed || !ae.Server {
			if connLost {
				return &transport.BrokerError{Kind: transport.KindConnection, Reason: ae.Reason,
					Err: transport.ErrConnectionLost}
			}
			return &transport.BrokerError{Kind: transport.KindChannel, Reason: ae.Reason,
				Err: errChannelClosed}
		}
		kind := transport.KindChannel
		if isHardCode(ae.Code) && !ae.Recover {
			kind = transport.KindConnection
		}
		return &transport.BrokerError{Kind: kind, Code: ae.Code, Reason: ae.Reason}
	}
	return &transport.BrokerError{Kind: transport.KindConnection,
		Err: fmt.Errorf("%w: %w", transport.ErrConnectionLost, err)}
}
