package sqla

import (
	"fmt"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// The payload column holds Kombu's JSON envelope (package envelope), with
// bytes bodies base64-encoded as Kombu's virtual channel writes them.

func encodeMessage(m *transport.Message) ([]byte, error) { return channel.EncodeEnvelope(m, "base64") }

// decodeMessage decodes a payload; what is not a Kombu envelope is still
// a message, with Err set and the raw bytes as Body. The delivery tag is
// the stored one, or a new one when there is none.
func decodeMessage(payload []byte) *transport.Message {
	m, err := channel.DecodeEnvelope(payload)
	if err != nil {
		m = &transport.Message{Body: payload, Err: fmt.Errorf("sqla: %w", err)}
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
