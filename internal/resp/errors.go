package resp

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. [Reader.Next] wraps them with %w and a description of what
// was wrong and at which stream offset; match them with errors.Is.
var (
	// ErrProtocol reports bytes that are not valid RESP2/RESP3: an unknown
	// type byte, a malformed length or number, a line or bulk payload that is
	// not terminated by CRLF, a negative length other than -1, or a streamed
	// RESP3 type (which Redis never sends and this reader does not support).
	ErrProtocol = errors.New("resp: protocol error")

	// ErrTooLarge reports a reply that exceeds the reader's [Limits]: a bulk
	// payload longer than MaxBulk, an aggregate with more than MaxElems
	// elements, nesting deeper than MaxDepth, or a line longer than MaxLine.
	// It is reported as soon as the offending header is complete, before any
	// memory is set aside for the declared size.
	ErrTooLarge = errors.New("resp: reply exceeds reader limits")
)

// RedisError is an error reply sent by the server: a RESP simple error
// ("-ERR unknown command") or a RESP3 blob error ("!21\r\nSYNTAX invalid
// syntax\r\n"). It is a well-formed reply, not a protocol failure: the
// connection stays usable. [Value.Err] returns one.
type RedisError struct {
	// Msg is the server's text, verbatim, e.g. "WRONGTYPE Operation against
	// a key holding the wrong kind of value".
	Msg string
}

// Error returns the server's text prefixed with "resp: ".
func (e *RedisError) Error() string { return "resp: " + e.Msg }

// Prefix returns the error code: by Redis convention the first word of the
// message, such as "ERR", "WRONGTYPE", "NOSCRIPT", "MOVED" or "BUSYGROUP".
// It returns the whole message when the message has no space.
func (e *RedisError) Prefix() string {
	if i := strings.IndexByte(e.Msg, ' '); i >= 0 {
		return e.Msg[:i]
	}
	return e.Msg
}

// maxQuoted bounds how much of an offending line an error message quotes.
const maxQuoted = 32

// quote renders b for an error message, shortened to maxQuoted bytes.
func quote(b []byte) string {
	if len(b) > maxQuoted {
		return fmt.Sprintf("%q...", b[:maxQuoted])
	}
	return fmt.Sprintf("%q", b)
}
