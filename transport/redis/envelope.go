package redis

import (
	"fmt"

	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// The Kombu envelope (package envelope) knows no transport; these convert
// between its types and the transport contract's.

func toEnvelope(m *transport.Message) envelope.Message {
	return envelope.Message{
		Body:            m.Body,
		ContentType:     m.ContentType,
		ContentEncoding: m.ContentEncoding,
		Headers:         m.Headers,
		Properties:      envelope.Properties(m.Properties),
		DeliveryInfo: envelope.DeliveryInfo{
			Exchange:    m.DeliveryInfo.Exchange,
			RoutingKey:  m.DeliveryInfo.RoutingKey,
			Redelivered: m.DeliveryInfo.Redelivered,
			DeliveryTag: m.DeliveryInfo.DeliveryTag,
		},
	}
}

func fromEnvelope(e *envelope.Message) *transport.Message {
	return &transport.Message{
		Body:            e.Body,
		ContentType:     e.ContentType,
		ContentEncoding: e.ContentEncoding,
		Headers:         e.Headers,
		Properties:      transport.Properties(e.Properties),
		DeliveryInfo: transport.DeliveryInfo{
			Exchange:    e.DeliveryInfo.Exchange,
			RoutingKey:  e.DeliveryInfo.RoutingKey,
			Redelivered: e.DeliveryInfo.Redelivered,
			DeliveryTag: e.DeliveryInfo.DeliveryTag,
		},
	}
}

// encodeEnvelope is envelope.Encode of a transport message.
func encodeEnvelope(m *transport.Message, bodyEncoding string) ([]byte, error) {
	e := toEnvelope(m)
	return envelope.Encode(&e, bodyEncoding)
}

// appendEnvelope is envelope.Append of a transport message.
func appendEnvelope(dst []byte, m *transport.Message, bodyEncoding string) ([]byte, error) {
	e := toEnvelope(m)
	return envelope.Append(dst, &e, bodyEncoding)
}

// decodeEnvelope is envelope.Decode into a transport message; what is not
// a Kombu message gives an error wrapping transport.ErrBadEnvelope.
func decodeEnvelope(data []byte) (*transport.Message, error) {
	e, err := envelope.Decode(data)
	if err != nil {
		return nil, badEnvelope(err)
	}
	return fromEnvelope(e), nil
}

// markRedelivered is envelope.MarkRedelivered with the contract's error.
func markRedelivered(data []byte) ([]byte, error) {
	b, err := envelope.MarkRedelivered(data)
	if err != nil {
		return nil, badEnvelope(err)
	}
	return b, nil
}

func badEnvelope(err error) error {
	return fmt.Errorf("%w: %w", transport.ErrBadEnvelope, err)
}
