package envelope

import (
	"errors"
	"time"
)

// ErrMalformed reports bytes that are not a Kombu message envelope.
var ErrMalformed = errors.New("not a Kombu message envelope")

// Message is what one envelope carries.
type Message struct {
	// Body is the payload, after body_encoding is undone.
	Body            []byte
	ContentType     string
	ContentEncoding string
	// Headers are the application headers; values are JSON-compatible.
	Headers map[string]any
	// Properties are the AMQP-style properties the envelope keeps.
	Properties Properties
	// DeliveryInfo is where the message was published to, and its tag.
	DeliveryInfo DeliveryInfo
}

// Properties are the message properties, field for field as
// transport.Properties names them, so that one converts to the other.
type Properties struct {
	CorrelationID string
	ReplyTo       string
	MessageID     string
	Type          string
	AppID         string
	UserID        string
	// Timestamp is written as seconds since the epoch.
	Timestamp time.Time
	// DeliveryMode is 1 (transient) or 2 (persistent); 0 is written as 2.
	DeliveryMode uint8
	// Expiration is the TTL in milliseconds, as a decimal string.
	Expiration string
	Priority   int
	// Extra holds properties the fields above do not name.
	Extra map[string]any
}

// DeliveryInfo is the envelope's delivery_info and delivery_tag.
type DeliveryInfo struct {
	Exchange    string
	RoutingKey  string
	Redelivered bool
	// DeliveryTag is Kombu's delivery_tag (a UUID4 string from Kombu).
	DeliveryTag string
}
