package resp

import (
	"slices"
	"strconv"
)

// A command is sent to Redis as a RESP array of bulk strings:
//
//	*<argc>\r\n
//	$<len(arg)>\r\n<arg>\r\n   (once per argument)
//
// The functions below append that encoding to a caller-owned buffer, in the
// style of strconv.AppendInt: they allocate only when dst lacks capacity.

// AppendCommand appends the command args (the name first, e.g. "BRPOP",
// then its arguments) to dst and returns the extended buffer. Arguments are
// binary-safe: they may hold CR, LF or any other byte.
func AppendCommand(dst []byte, args ...string) []byte {
	size := headerLen(len(args))
	for _, a := range args {
		size += headerLen(len(a)) + len(a) + 2
	}
	dst = slices.Grow(dst, size)
	dst = AppendArrayHeader(dst, len(args))
	for _, a := range args {
		dst = AppendBulkString(dst, a)
	}
	return dst
}

// AppendCommandBytes is [AppendCommand] for arguments held as byte slices.
func AppendCommandBytes(dst []byte, args ...[]byte) []byte {
	size := headerLen(len(args))
	for _, a := range args {
		size += headerLen(len(a)) + len(a) + 2
	}
	dst = slices.Grow(dst, size)
	dst = AppendArrayHeader(dst, len(args))
	for _, a := range args {
		dst = AppendBulk(dst, a)
	}
	return dst
}

// AppendArrayHeader appends "*<n>\r\n", the header of a command of n
// arguments, to dst. Use it with [AppendBulkString], [AppendBulk] and
// [AppendBulkInt] to build a command whose arguments are not in one slice
// (BRPOP over a computed list of keys) without allocating. A negative n
// appends the RESP2 null array "*-1\r\n".
func AppendArrayHeader(dst []byte, n int) []byte {
	if n < 0 {
		n = -1
	}
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\r', '\n')
}

// AppendBulkString appends s as a bulk string, "$<len>\r\n<s>\r\n", to dst.
func AppendBulkString(dst []byte, s string) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

// AppendBulk appends b as a bulk string, "$<len>\r\n<b>\r\n", to dst.
func AppendBulk(dst, b []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

// AppendBulkInt appends the decimal text of n as a bulk string to dst, the
// form Redis expects for numeric arguments such as BRPOP's timeout or
// LMPOP's count: 42 becomes "$2\r\n42\r\n".
func AppendBulkInt(dst []byte, n int64) []byte {
	var tmp [20]byte
	return AppendBulk(dst, strconv.AppendInt(tmp[:0], n, 10))
}

// headerLen returns the length of a "*<n>\r\n" or "$<n>\r\n" header.
func headerLen(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return 1 + d + 2
}
