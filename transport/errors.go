package transport

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Transports wrap them with %w; match with errors.Is.
var (
	// ErrClosed is returned by any call on a closed connection or channel.
	ErrClosed = errors.New("transport: closed")
	// ErrConnectionLost reports a broker connection that broke.
	ErrConnectionLost = errors.New("transport: connection lost")
	// ErrEmpty is returned by Get when the queue holds no message.
	ErrEmpty = errors.New("transport: queue is empty")
	// ErrNotFound reports a missing exchange or queue (AMQP 404 NOT_FOUND).
	ErrNotFound = errors.New("transport: not found")
	// ErrNotEquivalent reports a redeclaration with other settings (AMQP 406
	// PRECONDITION_FAILED).
	ErrNotEquivalent = errors.New("transport: not equivalent to the existing declaration")
	// ErrPreconditionFailed reports a refused operation, such as deleting a
	// non-empty queue with ifEmpty.
	ErrPreconditionFailed = errors.New("transport: precondition failed")
	// ErrUnknownDeliveryTag reports an Ack or Reject of a tag the channel
	// does not hold.
	ErrUnknownDeliveryTag = errors.New("transport: unknown delivery tag")
	// ErrUnsupported reports an operation the transport cannot do.
	ErrUnsupported = errors.New("transport: not supported by this transport")
	// ErrBadEnvelope reports bytes that are not a valid message envelope.
	ErrBadEnvelope = errors.New("transport: malformed message envelope")
	// ErrConsumerCancelled reports a consumer the broker ended by itself
	// (AMQP basic.cancel from the server), given to
	// ConsumeOptions.OnCancel.
	ErrConsumerCancelled = errors.New("transport: consumer cancelled by the broker")
)

// ErrorKind says what a failure breaks.
type ErrorKind int

const (
	// KindConnection: the connection is gone; reconnect (Kombu's
	// connection_errors).
	KindConnection ErrorKind = iota + 1
	// KindChannel: the channel is gone or the operation was refused; the
	// connection is fine (Kombu's channel_errors).
	KindChannel
)

// BrokerError is a failure reported by (or on the way to) the broker.
type BrokerError struct {
	Kind ErrorKind
	// Code is the AMQP reply code (404, 406, 320 ...) or 0.
	Code int
	// Reason is the broker's text, e.g. "NOT_FOUND - no queue 'x' in vhost '/'".
	Reason string
	// Err is the underlying cause, if any.
	Err error
}

func (e *BrokerError) Error() string {
	kind := "channel"
	if e.Kind == KindConnection {
		kind = "connection"
	}
	s := "transport: " + kind + " error"
	if e.Code != 0 {
		s += fmt.Sprintf(" %d", e.Code)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *BrokerError) Unwrap() error { return e.Err }

// Is matches the sentinels that correspond to AMQP reply codes, so that
// errors.Is(err, ErrNotFound) holds for a 404 from any transport.
func (e *BrokerError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == 404
	case ErrNotEquivalent, ErrPreconditionFailed:
		return e.Code == 406
	case ErrConnectionLost:
		return e.Kind == KindConnection
	}
	return false
}

// IsConnectionError reports whether err means the connection must be
// re-established (recoverable by reconnecting).
func IsConnectionError(err error) bool {
	var be *BrokerError
	if errors.As(err, &be) {
		return be.Kind == KindConnection
	}
	return errors.Is(err, ErrConnectionLost)
}

// IsChannelError reports whether err is a channel-level failure: the
// connection is intact but the channel or the operation failed.
func IsChannelError(err error) bool {
	var be *BrokerError
	return errors.As(err, &be) && be.Kind == KindChannel
}

// NotFound returns a channel error with code 404 in Kombu's wording, e.g.
// NotFound("queue", "q", "/") is "NOT_FOUND - no queue 'q' in vhost '/'".
func NotFound(what, name, vhost string) error {
	return &BrokerError{Kind: KindChannel, Code: 404,
		Reason: fmt.Sprintf("NOT_FOUND - no %s '%s' in vhost '%s'", what, name, vhost)}
}

// NotEquivalent returns a channel error with code 406 for a redeclaration of
// name with different settings.
func NotEquivalent(what, name, detail string) error {
	return &BrokerError{Kind: KindChannel, Code: 406,
		Reason: fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg %s for %s '%s'", detail, what, name)}
}

// OptionError reports a transport option (a URL query parameter or a
// transport_options key) that is unknown, or whose value is unusable.
// Unlike Kombu, which ignores options it does not know, every transport
// here refuses them, so that a misspelt option is caught at once.
type OptionError struct {
	// Transport is the transport's name ("redis", "amqp", ...).
	Transport string
	// Key is the offending option.
	Key string
	// Value is its value as given.
	Value any
	// Reason says what is wrong ("unknown option", "want a bool", ...).
	Reason string
	// Unknown lists every unknown key, when Reason is "unknown option".
	Unknown []string
	// Valid lists the options the transport knows, when Reason is
	// "unknown option".
	Valid []string
}

func (e *OptionError) Error() string {
	if len(e.Unknown) > 0 {
		s := fmt.Sprintf("%s: unknown option %q", e.Transport, e.Key)
		if len(e.Unknown) > 1 {
			s = fmt.Sprintf("%s: unknown options %q", e.Transport, e.Unknown)
		}
		return s + "; valid options: " + strings.Join(e.Valid, ", ")
	}
	return fmt.Sprintf("%s: option %s=%v: %s", e.Transport, e.Key, e.Value, e.Reason)
}
