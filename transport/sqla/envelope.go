package sqla

import (
	"fmt"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// The payload column holds Kombu's JSON envelope (package envelope), with
// bytes bodies base64-encoded as Kombu's virtual channel writes them.

func encodeMessage(m *transport.Message) ([]byte, error) {
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
	return envelope.Encode(&e, "base64")
}

// decodeMessage decodes a payload; what is not a Kombu envelope is still
// a message, with Err set and the raw bytes as Body. The delivery tag is
// the stored one, or a new one when there is none.
func decodeMessage(payload []byte) *transport.Message {
	e, err := envelope.Decode(payload)
	var m *transport.Message
	if err != nil {
		m = &transport.Message{Body: payload, Err: fmt.Errorf("sqla: %w: %w", transport.ErrBadEnvelope, err)}
	} else {
		m = &transport.Message{
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
	if m.DeliveryInfo.DeliveryTag == "" {
		m.DeliveryInfo.DeliveryTag = channel.NewDeliveryTag()
	}
	return m
}

// redelivered marks a payload redelivered; a payload that is not an
// envelope goes back unchanged.
func redelivered(payload []byte) []byte {
	if b, err := envelope.MarkRedelivered(payload); err == nil {
		return b
	}
	return payload
}
