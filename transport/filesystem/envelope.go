package filesystem

import (
	"fmt"

	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// bodyEncoding is Kombu's virtual channel default (body_encoding
// "base64"): the body is stored base64-encoded in the envelope.
const bodyEncoding = "base64"

// encode returns the Kombu envelope of m, as a file holds it.
func encode(m *transport.Message) ([]byte, error) {
	e := envelope.Message{
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
	return envelope.Encode(&e, bodyEncoding)
}

// decode reads a file's bytes. What is not a Kombu envelope is still
// returned, as a message with Err set (matching transport.ErrBadEnvelope)
// and the raw bytes as its body, for the consumer's decode-error path.
func decode(data []byte) *transport.Message {
	e, err := envelope.Decode(data)
	if err != nil {
		return &transport.Message{Body: data, Err: fmt.Errorf("%w: %w", transport.ErrBadEnvelope, err)}
	}
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

// markRedelivered is envelope.MarkRedelivered.
func markRedelivered(data []byte) ([]byte, error) { return envelope.MarkRedelivered(data) }
