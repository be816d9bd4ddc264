package filesystem

import (
	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// bodyEncoding is Kombu's virtual channel default (body_encoding
// "base64"): the body is stored base64-encoded in the envelope.
const bodyEncoding = "base64"

// encode returns the Kombu envelope of m, as a file holds it.
func encode(m *transport.Message) ([]byte, error) { return channel.EncodeEnvelope(m, bodyEncoding) }

// decode reads a file's bytes. What is not a Kombu envelope is still
// returned, as a message with Err set (matching transport.ErrBadEnvelope)
// and the raw bytes as its body, for the consumer's decode-error path.
func decode(data []byte) *transport.Message {
	m, err := channel.DecodeEnvelope(data)
	if err != nil {
		return &transport.Message{Body: data, Err: err}
	}
	return m
}

// markRedelivered is channel.MarkRedelivered.
func markRedelivered(data []byte) ([]byte, error) { return channel.MarkRedelivered(data) }
