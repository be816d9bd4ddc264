package redis

import (
	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// The Kombu envelope, converted by the virtual channel (channel/envelope.go).

func encodeEnvelope(m *transport.Message, bodyEncoding string) ([]byte, error) {
	return channel.EncodeEnvelope(m, bodyEncoding)
}

func decodeEnvelope(data []byte) (*transport.Message, error) { return channel.DecodeEnvelope(data) }

func markRedelivered(data []byte) ([]byte, error) { return channel.MarkRedelivered(data) }
