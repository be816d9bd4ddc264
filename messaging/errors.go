package messaging

import (
	"errors"
	"fmt"

	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// Sentinel errors. Functions wrap them with %w and add detail; match them
// with errors.Is. Their strings never change.
var (
	// ErrOperational reports a connection failure that outlived the retry
	// policy (Kombu's OperationalError). The error is an
	// [*OperationalError] that unwraps to the last transport error.
	ErrOperational = errors.New("messaging: operational error")

	// ErrTimeout is returned by DrainEvents (and the helpers built on it)
	// when the context's deadline passed before an event arrived (Kombu's
	// socket.timeout). The error also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("messaging: timed out waiting for events")

	// ErrEmpty reports that a queue had no message to give (Kombu's
	// Empty): SimpleQueue.Get and GetNowait, Queue.Get.
	ErrEmpty = errors.New("messaging: queue is empty")

	// ErrMessageState reports a second settlement of a message, or a
	// settlement of a message that has no channel (Kombu's
	// MessageStateError). The error is a [*MessageStateError].
	ErrMessageState = errors.New("messaging: message state error")

	// ErrLimitExceeded reports a pool that is at its limit when the caller
	// would not wait (Kombu's LimitExceeded). The error is a
	// [*LimitExceededError].
	ErrLimitExceeded = errors.New("messaging: limit exceeded")

	// ErrClosed is returned by calls on a closed Connection, pool,
	// SimpleQueue or worker pool.
	ErrClosed = errors.New("messaging: closed")

	// ErrStopped is what Consumer.Err returns once the consumer was
	// stopped by its user: Close, Drain or Cancel.
	ErrStopped = errors.New("messaging: consumer stopped")

	// ErrCancelledByBroker is matched by what Consumer.Err (and the next
	// DrainEvents) returns once the broker ended one of the consumer's
	// queue consumers by itself: RabbitMQ does when the queue is deleted,
	// or loses the replica it was consumed on (py-amqp's
	// ConsumerCancelled). The error is a [*CancelledByBrokerError].
	ErrCancelledByBroker = errors.New("messaging: consumer cancelled by the broker")

	// ErrUnknownTransport reports a URL scheme with no transport. The
	// wrapping error lists the known schemes.
	ErrUnknownTransport = errors.New("messaging: no such transport")

	// ErrInvalidURL reports a broker URL that cannot be parsed.
	ErrInvalidURL = errors.New("messaging: invalid broker URL")

	// ErrNoCallbacks is returned by Consumer.Consume when the consumer has
	// neither callbacks nor an OnMessage handler (Kombu raises
	// NotImplementedError("Consumer does not have any callbacks") on the
	// first delivery instead).
	ErrNoCallbacks = errors.New("messaging: consumer does not have any callbacks")

	// ErrDecode reports a message that could not be turned into a value:
	// a malformed envelope, a failed decompression, a refused content type
	// or a body the serializer rejected (Kombu's DecodeError family). The
	// error is a [*DecodeError]; it unwraps to the cause, so
	// errors.Is(err, ErrContentDisallowed) still holds for a refused type.
	ErrDecode = errors.New("messaging: cannot decode message")

	// ErrSlowConsumer is reported by a [Workers] pool whose queue was full
	// when a delivery arrived; the message was requeued.
	ErrSlowConsumer = errors.New("messaging: slow consumer: worker queue full")
)

// Errors of the codec packages, re-exported so that users of messaging need
// not import them to match errors.
var (
	// ErrContentDisallowed is serializer.ErrContentDisallowed: a content
	// type outside the consumer's accept list (Kombu's ContentDisallowed).
	ErrContentDisallowed = serializer.ErrContentDisallowed
	// ErrNotInstalled is serializer.ErrNotInstalled: an unknown serializer
	// name (Kombu's SerializerNotInstalled).
	ErrNotInstalled = serializer.ErrNotInstalled
	// ErrEncode is serializer.ErrEncode (Kombu's EncodeError).
	ErrEncode = serializer.ErrEncode
)

// OperationalError is Kombu's OperationalError: the connection could not be
// (re-)established, or an operation kept failing with connection errors,
// within the retry policy. It matches [ErrOperational] and unwraps to the
// last error, so transport.IsConnectionError and errors.Is on the transport
// sentinels still work.
type OperationalError struct {
	// Op says what was being attempted: "connect", "ensure".
	Op string
	// Attempts is how many times it was tried.
	Attempts int
	Err      error
}

// Error describes the operation, the attempts and the last error.
func (e *OperationalError) Error() string {
	return fmt.Sprintf("messaging: %s failed after %d attempt(s): %v", e.Op, e.Attempts, e.Err)
}

// Unwrap returns [ErrOperational] and the cause.
func (e *OperationalError) Unwrap() []error { return []error{ErrOperational, e.Err} }

// MessageStateError is Kombu's MessageStateError. It matches
// [ErrMessageState].
type MessageStateError struct {
	// State is the message's state when the call was made.
	State State
	// NoChannel is set when the message has no receiving channel.
	NoChannel bool
}

// Error uses Kombu's wording: "Message already acknowledged with state:
// ACK", or "This message does not have a receiving channel".
func (e *MessageStateError) Error() string {
	if e.NoChannel {
		return "messaging: This message does not have a receiving channel"
	}
	return "messaging: Message already acknowledged with state: " + e.State.String()
}

// Is reports whether target is [ErrMessageState].
func (e *MessageStateError) Is(target error) bool { return target == ErrMessageState }

// LimitExceededError is Kombu's LimitExceeded (ConnectionLimitExceeded,
// ChannelLimitExceeded). It matches [ErrLimitExceeded].
type LimitExceededError struct {
	// Resource is "connection", "channel" or "producer".
	Resource string
	Limit    int
}

// Error names the resource and the limit.
func (e *LimitExceededError) Error() string {
	return fmt.Sprintf("messaging: %s limit exceeded: %d", e.Resource, e.Limit)
}

// Is reports whether target is [ErrLimitExceeded].
func (e *LimitExceededError) Is(target error) bool { return target == ErrLimitExceeded }

// CancelledByBrokerError reports a queue consumer that the broker ended by
// itself. It matches [ErrCancelledByBroker] and unwraps to the transport's
// error (which matches transport.ErrConsumerCancelled, and says why when
// the transport knows).
type CancelledByBrokerError struct {
	// Queue and ConsumerTag name the consumer that was cancelled.
	Queue       string
	ConsumerTag string
	Err         error
}

// Error names the queue, the consumer tag and the cause.
func (e *CancelledByBrokerError) Error() string {
	return fmt.Sprintf("messaging: the broker cancelled consumer %q of queue %q: %v", e.ConsumerTag, e.Queue, e.Err)
}

// Unwrap returns [ErrCancelledByBroker] and the cause.
func (e *CancelledByBrokerError) Unwrap() []error { return []error{ErrCancelledByBroker, e.Err} }

// DecodeError reports a delivered message that could not be decoded. It
// matches [ErrDecode] and unwraps to the cause (transport.ErrBadEnvelope, a
// compression error, a *serializer.ContentDisallowedError, a
// *serializer.DecodeError ...).
type DecodeError struct {
	// Queue and DeliveryTag identify the message (empty when unknown).
	Queue       string
	DeliveryTag string
	Err         error
}

// Error names the queue, the delivery tag and the cause.
func (e *DecodeError) Error() string {
	s := "messaging: cannot decode message"
	if e.Queue != "" {
		s += " from queue " + e.Queue
	}
	if e.DeliveryTag != "" {
		s += " (delivery tag " + e.DeliveryTag + ")"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns [ErrDecode] and the cause.
func (e *DecodeError) Unwrap() []error { return []error{ErrDecode, e.Err} }

// timeoutError is what DrainEvents returns on a deadline: it matches both
// ErrTimeout and context.DeadlineExceeded.
type timeoutError struct{ cause error }

func (e *timeoutError) Error() string { return ErrTimeout.Error() }
func (e *timeoutError) Unwrap() []error {
	return []error{ErrTimeout, e.cause}
}

// isRecoverableChannelError reports the channel errors that Kombu's py-amqp
// transport lists as recoverable (RecoverableChannelError): 311
// CONTENT_TOO_LARGE, 313 NO_CONSUMERS and 405 RESOURCE_LOCKED. Other channel
// errors (404, 406 ...) are the caller's mistake and are not retried.
func isRecoverableChannelError(err error) bool {
	var be *transport.BrokerError
	if !errors.As(err, &be) || be.Kind != transport.KindChannel {
		return false
	}
	switch be.Code {
	case 311, 313, 405:
		return true
	}
	return false
}
