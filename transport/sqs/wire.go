package sqs

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// fifoSuffix ends the name of every SQS FIFO queue.
const fifoSuffix = ".fifo"

// punctuation is Python's string.punctuation: the characters Kombu's
// CHARS_REPLACE_TABLE rewrites.
const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// EntityName turns a queue name into a legal SQS queue name exactly as
// Kombu's Channel.entity_name does: "." becomes "-", every other ASCII
// punctuation character except "-" and "_" becomes "_", and a ".fifo"
// suffix is kept. Other characters (letters, digits, non-ASCII) are left
// alone, as in Kombu; SQS itself refuses names outside [A-Za-z0-9_-].
func EntityName(name string) string {
	base, fifo := strings.CutSuffix(name, fifoSuffix)
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range base {
		switch {
		case r == '.':
			b.WriteByte('-')
		case r == '-' || r == '_':
			b.WriteRune(r)
		case r < 0x80 && strings.ContainsRune(punctuation, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	if fifo {
		b.WriteString(fifoSuffix)
	}
	return b.String()
}

// isFIFO reports whether Kombu treats a queue as FIFO: its (unmangled)
// name ends with ".fifo".
func isFIFO(queue string) bool { return strings.HasSuffix(queue, fifoSuffix) }

// encodeBody is the MessageBody Kombu's _put sends: the JSON envelope,
// base64-encoded when sqs_base64_encoding is on (the default).
func encodeBody(m *transport.Message, b64 bool) (string, error) {
	data, err := channel.EncodeEnvelope(m, "base64")
	if err != nil {
		return "", fmt.Errorf("sqs: encode: %w", err)
	}
	if !b64 {
		return string(data), nil
	}
	return base64.StdEncoding.EncodeToString(data), nil
}

// optionalB64Decode is Kombu's _optional_b64_decode: the body is base64
// when it decodes and encodes back to the same text; otherwise it is the
// JSON itself (a message written with sqs_base64_encoding off).
func optionalB64Decode(body string) []byte {
	data, err := base64.StdEncoding.DecodeString(body)
	if err == nil && base64.StdEncoding.EncodeToString(data) == body {
		return data
	}
	return []byte(body)
}

// decodeBody turns a received SQS message body into a transport message.
// Bytes that are not a Kombu envelope give a message with Err set and the
// raw bytes as Body, never an error that drops them.
func decodeBody(body string) *transport.Message {
	data := optionalB64Decode(body)
	m, err := channel.DecodeEnvelope(data)
	if err != nil {
		return &transport.Message{Body: data, Err: err}
	}
	return m
}

// fifoIDs returns the MessageGroupId and MessageDeduplicationId Kombu's
// _put sends to a FIFO queue: the message properties of those names when
// set, else "default" and a new uuid4.
func fifoIDs(m *transport.Message) (group, dedup string) {
	group, dedup = "default", ""
	if v, ok := m.Properties.Extra["MessageGroupId"]; ok {
		group = propString(v)
	}
	if v, ok := m.Properties.Extra["MessageDeduplicationId"]; ok {
		dedup = propString(v)
	}
	if dedup == "" {
		dedup = channel.NewDeliveryTag() // a uuid4 string, as Kombu's str(uuid.uuid4())
	}
	return group, dedup
}

func propString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	}
	return fmt.Sprint(v)
}
