package channel

import (
	"fmt"

	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// The virtual transports (Redis, SQS, SQL, the filesystem) store Kombu's
// JSON envelope (package envelope, which knows no transport). These
// convert between it and the transport contract's Message.

// AppendEnvelope appends m's Kombu envelope to dst (envelope.Append);
// bodyEncoding is "base64" (Kombu's default) or "utf-8".
func AppendEnvelope(dst []byte, m *transport.Message, bodyEncoding string) ([]byte, error) {
	e := toEnvelope(m)
	return envelope.Append(dst, &e, bodyEncoding)
}

// toEnvelope converts m into the envelope's message (no copies of its
// body or maps).
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

// EnvelopeEncoder writes a run of envelopes (envelope.Encoder): a batch's
// messages that differ only in body and delivery tag share the encoding
// of the rest. The zero value is ready for use with body encoding "";
// Reset sets it. Not safe for concurrent use.
type EnvelopeEncoder struct{ e envelope.Encoder }

// Reset sets the body encoding ("base64" or "utf-8") and forgets the
// previous message.
func (ee *EnvelopeEncoder) Reset(bodyEncoding string) { ee.e.Reset(bodyEncoding) }

// Append appends m's envelope to dst, as AppendEnvelope does.
func (ee *EnvelopeEncoder) Append(dst []byte, m *transport.Message) ([]byte, error) {
	e := toEnvelope(m)
	return ee.e.Append(dst, &e)
}

// EncodeEnvelope returns m's Kombu envelope (envelope.Encode).
func EncodeEnvelope(m *transport.Message, bodyEncoding string) ([]byte, error) {
	return AppendEnvelope(nil, m, bodyEncoding)
}

// DecodeEnvelope reads a Kombu envelope into a Message (envelope.Decode).
// What is not a Kombu message gives an error wrapping
// transport.ErrBadEnvelope.
func DecodeEnvelope(data []byte) (*transport.Message, error) {
	e, err := envelope.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrBadEnvelope, err)
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
	}, nil
}

// MarkRedelivered marks stored envelope bytes redelivered, as Kombu's
// restore does (envelope.MarkRedelivered); bytes that are not an envelope
// give an error wrapping transport.ErrBadEnvelope.
func MarkRedelivered(data []byte) ([]byte, error) {
	b, err := envelope.MarkRedelivered(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", transport.ErrBadEnvelope, err)
	}
	return b, nil
}
