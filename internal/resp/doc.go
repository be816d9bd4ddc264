// Package resp reads Redis replies incrementally and writes Redis commands,
// for the sockets that the Redis transport owns inside the hub: the BRPOP
// connection and the PSUBSCRIBE connection of each channel.
//
// Those sockets are non-blocking and driven by the hub's poller, so a reply
// arrives in whatever pieces the kernel hands over: half a length header,
// three replies and a bit, one byte. go-redis's reader blocks on a bufio
// reader until a reply is complete, which the hub cannot afford. A [Reader]
// instead takes bytes as they come ([Reader.Feed]) and returns each reply as
// soon as its last byte is in ([Reader.Next]), keeping its progress in
// between. The package does no I/O and imports only the standard library.
//
// # Design
//
// The reader understands RESP2 and RESP3: simple strings, errors, integers,
// bulk strings, arrays, the RESP2 nulls ($-1 and *-1), and RESP3's null,
// double, boolean, big number, verbatim string, blob error, map, set, push
// and attribute types. The transport sees BRPOP replies ([key, value], or a
// null on timeout), pub/sub deliveries (["message", channel, data],
// ["pmessage", pattern, channel, data], as arrays in RESP2 and pushes in
// RESP3), subscription confirmations, +OK and +PONG, -ERR replies, integers,
// HELLO's map, LMPOP's [key, [v1, v2...]] and EVALSHA results. Streamed RESP3
// types ("$?", "*?"), which Redis never sends, are rejected.
//
// Parsing is resumable at any byte: an aggregate whose elements are still
// arriving is kept on an explicit stack (never recursion), and a scalar is
// taken only once all its bytes are buffered. Feeding a stream in any split
// yields the same replies and the same error as feeding it whole; a fuzz test
// checks this.
//
// Replies are returned without copying: a [Value]'s bytes point into the
// reader's buffer and its elements into reused scratch space, so a typical
// reply costs no allocation. The price is a lifetime rule: a Value is valid
// until the next call to Feed, Next or Reset on its reader, and
// [Value.Clone] makes a copy that lives on. The input buffer is compacted
// in place as replies are consumed and released when one big reply has left
// it large.
//
// Declared sizes are never trusted for allocation: a header announcing
// $999999999999 is refused by the [Limits] (by default 512 MiB bulk strings,
// 1 Mi elements per aggregate, 64 levels of nesting, 64 KiB lines) before
// anything is set aside, and an accepted size is filled only as its bytes
// arrive.
//
// [AppendCommand] and its relatives encode a command as an array of bulk
// strings into a caller-owned buffer, without allocating when the buffer has
// room.
//
// # Concurrency
//
// A [Reader] is not safe for concurrent use; it belongs to the goroutine that
// owns its socket (the hub goroutine). A [Value] returned by a Reader shares
// its memory and must stay on that goroutine unless cloned. The Append functions
// are safe for concurrent use on distinct buffers.
//
// # Errors
//
// Malformed input makes [Reader.Next] return an error wrapping [ErrProtocol]
// and a reply over the limits one wrapping [ErrTooLarge]; both name the
// stream offset of the offending item. Such an error is sticky: the stream is
// out of sync and the connection should be closed; [Reader.Reset] makes the
// Reader usable for a new one. A server error reply ("-ERR ...",
// "-WRONGTYPE ...") is not a reader error but a well-formed Value of Kind
// [Error]; [Value.Err] turns it into a [*RedisError].
package resp
