package serializer

import (
	"errors"
	"fmt"
)

// Sentinel errors; match with errors.Is. Their strings never change.
var (
	// ErrNotInstalled reports an unknown serializer name (Kombu's
	// SerializerNotInstalled). The wrapping error names the known ones.
	ErrNotInstalled = errors.New("serializer: no such serializer installed")

	// ErrContentDisallowed reports content refused by the accept policy
	// (Kombu's ContentDisallowed). The error is a [*ContentDisallowedError].
	ErrContentDisallowed = errors.New("serializer: content disallowed")

	// ErrDecode reports a body that could not be deserialized (Kombu's
	// DecodeError). The error is a [*DecodeError].
	ErrDecode = errors.New("serializer: cannot decode")

	// ErrEncode reports a value that could not be serialized (Kombu's
	// EncodeError). The error is an [*EncodeError].
	ErrEncode = errors.New("serializer: cannot encode")

	// ErrPickleUnsupported is returned for the "pickle" serializer in both
	// directions. A pickle is a program for the Python VM; it cannot be read
	// safely, or at all, outside Python.
	ErrPickleUnsupported = errors.New("serializer: pickle is not supported: Python pickles cannot be read safely outside Python; use json")

	// ErrImmutable is returned by every mutating method of the registry that
	// [Default] returns. Use [NewRegistry] or [Registry.Clone].
	ErrImmutable = errors.New("serializer: the default registry is immutable; use NewRegistry or Clone")

	// ErrInvalidSerializer reports a bad [Registry.Register] call.
	ErrInvalidSerializer = errors.New("serializer: invalid serializer")
)

// ContentDisallowedError is Kombu's ContentDisallowed: the content type is
// outside the accept set (Reason "untrusted") or, with the default policy,
// in the disabled set (Reason "disabled"). It matches [ErrContentDisallowed].
type ContentDisallowedError struct {
	Reason      string // "untrusted" or "disabled"
	Name        string // the serializer name, or the content type when unknown
	ContentType string
}

// Error returns Kombu's wording, prefixed with the package name:
// "serializer: Refusing to deserialize untrusted content of type json
// (application/json)".
func (e *ContentDisallowedError) Error() string {
	return fmt.Sprintf("serializer: Refusing to deserialize %s content of type %s (%s)", e.Reason, e.Name, e.ContentType)
}

// Is reports whether target is [ErrContentDisallowed].
func (e *ContentDisallowedError) Is(target error) bool { return target == ErrContentDisallowed }

// DecodeError reports a body that could not be deserialized. It matches
// [ErrDecode] and unwraps to the cause (a JSON syntax error,
// [ErrPickleUnsupported], ...).
type DecodeError struct {
	ContentType string
	Err         error
}

// Error describes the content type and the cause.
func (e *DecodeError) Error() string {
	return "serializer: cannot decode " + e.ContentType + ": " + e.Err.Error()
}

// Unwrap returns [ErrDecode] and the cause, so errors.Is matches both.
func (e *DecodeError) Unwrap() []error { return []error{ErrDecode, e.Err} }

// EncodeError reports a value that could not be serialized. It matches
// [ErrEncode] and unwraps to the cause.
type EncodeError struct {
	Serializer string
	Err        error
}

// Error describes the serializer and the cause.
func (e *EncodeError) Error() string {
	return "serializer: cannot encode with " + e.Serializer + ": " + e.Err.Error()
}

// Unwrap returns [ErrEncode] and the cause, so errors.Is matches both.
func (e *EncodeError) Unwrap() []error { return []error{ErrEncode, e.Err} }
