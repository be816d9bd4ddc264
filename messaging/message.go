package messaging

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// State is the settlement state of a received message (Kombu's
// message._state).
type State int

// Message states. A message starts Received and is settled once: Acked,
// Rejected or Requeued.
const (
	Received State = iota
	Acked
	Rejected
	Requeued
)

// String returns Kombu's name: RECEIVED, ACK, REJECTED, REQUEUED.
func (s State) String() string {
	switch s {
	case Received:
		return "RECEIVED"
	case Acked:
		return "ACK"
	case Rejected:
		return "REJECTED"
	case Requeued:
		return "REQUEUED"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Message is a received message (Kombu's Message): the body, already
// decompressed according to its "compression" header, its metadata, and
// the settlement methods.
//
// The exported fields are read-only by convention once the message is
// delivered. Decode, Ack, Reject and Requeue are safe for concurrent use,
// so a message may be handed to another goroutine and settled there.
type Message struct {
	// Body is the serialized payload, decompressed. If decompression failed
	// it is the body as received, and Decode returns the error.
	Body            []byte
	ContentType     string
	ContentEncoding string
	// Headers are the application headers (Kombu's message.headers).
	Headers      map[string]any
	Properties   transport.Properties
	DeliveryInfo transport.DeliveryInfo

	// raw is the body as received (compressed, or the raw bytes of a
	// malformed envelope): what a dead-letter queue keeps.
	raw    []byte
	ch     transport.Channel
	noAck  bool
	ser    *serializer.Registry
	accept *serializer.AcceptSet
	// errs are the errors met while building the message (malformed
	// envelope, failed decompression): recorded, not raised, as Kombu's
	// message.errors.
	errs []error

	// mu guards the state, the decoded payload and onSettle: the hub
	// goroutine and handler goroutines may settle and decode concurrently.
	mu    sync.Mutex
	state State
	// onSettle, when set, runs once, just before the settlement is sent
	// (a Workers pool frees the message's place there, before the broker
	// can free its prefetch slot).
	onSettle  func()
	decoded   bool
	payload   any
	decodeErr error

	// afterSettle, when set, runs once with the message, after its first
	// settlement was handed to the channel, whether or not the channel
	// took it (the consumer forgets the message there: see
	// Consumer.Drain).
	afterSettle func(*Message)
}

// newMessage wraps a transport message. The body stays as received: the
// caller decompresses it (decompress) before anyone sees the message.
func newMessage(tm *transport.Message, ch transport.Channel, ser *serializer.Registry,
	accept *serializer.AcceptSet, noAck bool) *Message {
	m := &Message{
		Body:            tm.Body,
		ContentType:     tm.ContentType,
		ContentEncoding: tm.ContentEncoding,
		Headers:         tm.Headers,
		Properties:      tm.Properties,
		DeliveryInfo:    tm.DeliveryInfo,
		raw:             tm.Body,
		ch:              ch,
		noAck:           noAck,
		ser:             ser,
		accept:          accept,
	}
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	if tm.Err != nil {
		m.errs = append(m.errs, tm.Err)
		return m
	}
	if v, ok := m.Headers["compression"]; ok && v != nil {
		if s, _ := v.(string); s == "" {
			m.errs = append(m.errs, fmt.Errorf("messaging: compression header is %T, not a string", v))
		}
	}
	return m
}

// compression returns the method named by the "compression" header, or "".
func (m *Message) compression() string {
	s, _ := m.Headers["compression"].(string)
	return s
}

// decompress decompresses the body when the "compression" header asks for
// it (Kombu does it in Message's constructor), with at most limit bytes of
// output (the registry's limit when limit <= 0). A failure is recorded in
// errs and leaves the body as received. Called once, before the message is
// handed to anyone.
func (m *Message) decompress(comp *compression.Registry, limit int64) {
	method := m.compression()
	if method == "" || len(m.errs) > 0 {
		return
	}
	body, err := comp.DecompressLimit(m.Body, method, limit)
	if err != nil {
		m.errs = append(m.errs, err)
		return
	}
	m.Body = body
}

// Err returns the first error met while building the message (a malformed
// envelope, a failed decompression), or nil.
func (m *Message) Err() error {
	if len(m.errs) == 0 {
		return nil
	}
	return m.decodeError(m.errs[0])
}

func (m *Message) decodeError(err error) error {
	return &DecodeError{Queue: m.DeliveryInfo.Queue, DeliveryTag: m.DeliveryInfo.DeliveryTag, Err: err}
}

// DeliveryTag identifies the delivery on its channel.
func (m *Message) DeliveryTag() string { return m.DeliveryInfo.DeliveryTag }

// Decode deserializes the body by its content type and encoding, with the
// consumer's accept list, and caches the result (Kombu's decode() and
// payload). See serializer.Registry.Loads for the shapes of the values.
// Errors are [*DecodeError]s matching [ErrDecode] and their cause:
// [ErrContentDisallowed] for a refused content type, serializer.ErrDecode
// for a bad body, or the error of Err.
func (m *Message) Decode() (any, error) {
	if err := m.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.decoded {
		m.payload, m.decodeErr = m.registry().Loads(m.Body, m.ContentType, m.ContentEncoding, m.accept)
		if m.decodeErr != nil {
			m.decodeErr = m.decodeError(m.decodeErr)
		}
		m.decoded = true
	}
	return m.payload, m.decodeErr
}

// Payload is Decode (Kombu's payload property).
func (m *Message) Payload() (any, error) { return m.Decode() }

// DecodeInto deserializes the body into v, a non-nil pointer (a struct, a
// map, a slice ...), with the same accept rules as Decode. It is not cached.
func (m *Message) DecodeInto(v any) error {
	if err := m.Err(); err != nil {
		return err
	}
	if err := m.registry().LoadsInto(m.Body, m.ContentType, m.ContentEncoding, m.accept, v); err != nil {
		return m.decodeError(err)
	}
	return nil
}

func (m *Message) registry() *serializer.Registry {
	if m.ser == nil {
		return serializer.Default()
	}
	return m.ser
}

// State returns the settlement state.
func (m *Message) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Acknowledged reports whether the message was settled (acked, rejected or
// requeued).
func (m *Message) Acknowledged() bool { return m.State() != Received }

// Ack acknowledges the message. A message from a no-ack consumer needs no
// acknowledgement: Ack does nothing (as Kombu's for no_ack consumers).
// Errors: [*MessageStateError] if the message was already settled or has
// no channel; the channel's error otherwise. Safe for concurrent use; it
// does not wait for the broker.
func (m *Message) Ack() error {
	return m.settle(Acked, func() error { return m.ch.Ack(m.DeliveryInfo.DeliveryTag) })
}

// Reject rejects the message without requeueing it: the broker drops it
// (or dead-letters it). Errors as for Ack.
func (m *Message) Reject() error {
	return m.settle(Rejected, func() error { return m.ch.Reject(m.DeliveryInfo.DeliveryTag, false) })
}

// Requeue rejects the message and puts it back in its queue. Errors as for
// Ack.
func (m *Message) Requeue() error {
	return m.settle(Requeued, func() error { return m.ch.Reject(m.DeliveryInfo.DeliveryTag, true) })
}

func (m *Message) settle(to State, do func() error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ch == nil {
		return &MessageStateError{State: m.state, NoChannel: true}
	}
	if to == Acked && m.noAck {
		return nil
	}
	if m.state != Received {
		return &MessageStateError{State: m.state}
	}
	if f := m.onSettle; f != nil {
		m.onSettle = nil
		f()
	}
	err := do()
	if f := m.afterSettle; f != nil {
		m.afterSettle = nil
		f(m)
	}
	if err != nil {
		return err
	}
	m.state = to
	return nil
}

// setOnSettle sets the hook settle runs before its first settlement.
func (m *Message) setOnSettle(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onSettle = f
}

// AckLogError acknowledges the message and logs a failure instead of
// returning it (Kombu's ack_log_error). A nil logger discards.
func (m *Message) AckLogError(logger *slog.Logger) {
	if err := m.Ack(); err != nil && logger != nil {
		logger.Error("messaging: cannot acknowledge message", "delivery_tag", m.DeliveryTag(), "err", err)
	}
}

// RejectLogError rejects the message (without requeue) and logs a failure
// instead of returning it (Kombu's reject_log_error). A nil logger
// discards.
func (m *Message) RejectLogError(logger *slog.Logger) {
	if err := m.Reject(); err != nil && logger != nil {
		logger.Error("messaging: cannot reject message", "delivery_tag", m.DeliveryTag(), "err", err)
	}
}
