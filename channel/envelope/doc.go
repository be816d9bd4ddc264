// Package envelope is Kombu's JSON message envelope: the bytes a Kombu
// virtual transport (Redis today; SQS, SQL databases and the filesystem in
// Kombu too) stores for each message, byte for byte as Python Kombu writes
// them (kombu-spec §1.4). It is the Go side of kombu.transport.virtual's
// Channel._inplace_augment_message / prepare_message and of Message's
// decoding of the stored payload.
//
// [Encode] and [Append] write a [Message] the way Python's json.dumps does,
// so the output is identical to Kombu's for the same message; [Decode]
// reads any formatting and refuses what is not a Kombu message;
// [MarkRedelivered] edits stored bytes the way Kombu's restore does.
// [Encoder] writes a batch of envelopes as Append would, reusing the
// encoding of what consecutive messages share (all but body and tag).
//
// The package knows no transport: its [Message], [Properties] and
// [DeliveryInfo] hold exactly what the envelope carries, and a transport
// converts them to and from its own types. It imports the standard library
// only.
//
// Concurrency: every function is safe for concurrent use; none keeps state
// or starts goroutines. An [Encoder] keeps the previous message's encoding
// and belongs to one goroutine.
//
// Errors: input that is not a Kombu envelope gives an error wrapping
// [ErrMalformed]; a message that cannot be written (a NaN header, a body
// that is not UTF-8 with body_encoding utf-8, an unknown body_encoding) an
// error naming the field.
package envelope
