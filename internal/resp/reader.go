package resp

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// Default limits, used for every zero field of [Limits].
const (
	// DefaultMaxBulk is Redis's own default proto-max-bulk-len: 512 MiB.
	DefaultMaxBulk = 512 << 20
	// DefaultMaxElems bounds the declared length of one aggregate: 1 Mi
	// elements (a Map of N pairs counts 2N).
	DefaultMaxElems = 1 << 20
	// DefaultMaxDepth bounds how deeply aggregates nest.
	DefaultMaxDepth = 64
	// DefaultMaxLine bounds the content of one line: a simple string, an
	// error, a number or a length header. Redis's own lines are short; the
	// bound stops a peer that never sends CRLF from growing the buffer.
	DefaultMaxLine = 64 << 10
)

const (
	// minBuf is the smallest input buffer the reader allocates.
	minBuf = 4 << 10
	// retainBuf and retainVals bound the scratch memory kept between replies:
	// a larger buffer, left behind by one big reply, is dropped once idle.
	retainBuf  = 1 << 20
	retainVals = 4 << 10
	// Caps on configured limits, so that size arithmetic cannot overflow int.
	maxBulkCap  = math.MaxInt / 4
	maxElemsCap = math.MaxInt32
)

// Limits bounds what a [Reader] accepts. A reply over a limit is an error
// wrapping [ErrTooLarge], reported as soon as its header is complete.
//
// Memory is never set aside for a declared size: a bulk string's bytes are
// buffered as they arrive, and an aggregate's elements are stored as they are
// parsed. What a reply costs is therefore bounded by what the peer actually
// sent (about 100 bytes of [Value] per element, plus the bytes themselves).
type Limits struct {
	// MaxBulk is the longest bulk string, blob error or verbatim string
	// accepted, in bytes. Default (zero or negative): DefaultMaxBulk.
	MaxBulk int
	// MaxElems is the largest element count of one aggregate (Array, Set,
	// Push; a Map or attribute of N pairs counts 2N). Default (zero or
	// negative): DefaultMaxElems.
	MaxElems int
	// MaxDepth is how many aggregates may nest: 1 allows a flat array and
	// no more. Default (zero or negative): DefaultMaxDepth.
	MaxDepth int
	// MaxLine is the longest line accepted, in bytes, not counting the type
	// byte and CRLF: a simple string, a simple error, a number, a length
	// header. Default (zero or negative): DefaultMaxLine.
	MaxLine int
}

// withDefaults fills the zero fields and caps the others.
func (l Limits) withDefaults() Limits {
	if l.MaxBulk <= 0 {
		l.MaxBulk = DefaultMaxBulk
	}
	l.MaxBulk = min(l.MaxBulk, maxBulkCap)
	if l.MaxElems <= 0 {
		l.MaxElems = DefaultMaxElems
	}
	l.MaxElems = min(l.MaxElems, maxElemsCap)
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	l.MaxLine = min(l.MaxLine, maxBulkCap)
	return l
}

// Reader parses RESP2 and RESP3 replies from bytes fed to it in chunks of any
// size, split anywhere. It does no I/O: the owner reads a socket and hands the
// bytes to [Reader.Feed], then calls [Reader.Next] until it reports that more
// bytes are needed.
//
// The zero value is ready to use with the default [Limits]. A Reader is not
// safe for concurrent use; it belongs to the goroutine that owns its socket
// (the hub goroutine, for the Redis transport).
type Reader struct {
	lim Limits // resolved; MaxDepth == 0 means "not yet"

	buf     []byte // input; buf[:pos] is consumed
	pos     int
	base    int64 // stream offset of buf[0]
	start   int64 // stream offset where the unfinished reply begins
	scanned int   // bytes after pos known to hold no '\n'

	frames  []frame // open aggregates, innermost last
	vals    []Value // finished children of the open frames
	arena   []Value // elements of the current reply's finished aggregates
	topAttr []Value // attribute waiting for the next top-level reply

	err error // sticky: set by the first malformed input
}

// frame is an aggregate whose header was parsed and whose elements are
// still arriving.
type frame struct {
	kind Kind
	n    int     // elements expected (2N for a map or an attribute)
	base int     // index in Reader.vals of its first element
	attr []Value // attribute waiting for its next element
}

// kindAttr marks a frame that collects a RESP3 attribute. It is never the
// Kind of a returned Value.
const kindAttr Kind = 255

// NewReader returns a Reader with the given limits; zero fields take their
// defaults.
func NewReader(l Limits) *Reader {
	return &Reader{lim: l.withDefaults()}
}

// Feed appends p to the bytes waiting to be parsed. p is copied, so the
// caller may reuse it at once. Feed invalidates every [Value] returned
// before it.
//
// The internal buffer is compacted rather than grown when the consumed
// prefix makes room, and a buffer larger than 1 MiB, left behind by one big
// reply, is released once all of it has been consumed. After Next has
// returned an error, Feed discards p.
func (r *Reader) Feed(p []byte) {
	if r.err != nil || len(p) == 0 {
		return
	}
	partial := r.partial()
	if r.pos == len(r.buf) && !partial {
		// Nothing unread and no reply in progress: nothing refers to buf.
		r.base += int64(r.pos)
		r.pos = 0
		if cap(r.buf) > retainBuf {
			r.buf = nil
		} else {
			r.buf = r.buf[:0]
		}
	}
	if len(p) <= cap(r.buf)-len(r.buf) {
		r.buf = append(r.buf, p...)
		return
	}
	unread := len(r.buf) - r.pos
	need := unread + len(p)
	if r.pos > 0 && need <= cap(r.buf) && !partial {
		// Compact in place. Only the values already returned point into
		// buf, and Feed invalidates them.
		copy(r.buf, r.buf[r.pos:])
		r.base += int64(r.pos)
		r.buf = append(r.buf[:unread], p...)
		r.pos = 0
		return
	}
	// Move to a new array holding only the unread bytes. When a reply is in
	// progress, its finished strings keep pointing into the old array,
	// which is never written again.
	nb := make([]byte, need, max(2*need, minBuf))
	copy(nb, r.buf[r.pos:])
	copy(nb[unread:], p)
	r.base += int64(r.pos)
	r.buf = nb
	r.pos = 0
}

// partial reports whether a reply has been partly parsed.
func (r *Reader) partial() bool { return len(r.frames) > 0 || r.topAttr != nil }

// Buffered returns how many fed bytes belong to no reply returned yet: the
// unparsed bytes plus those of a partly parsed reply.
func (r *Reader) Buffered() int {
	return int(r.base + int64(len(r.buf)) - r.start)
}

// Reset discards all buffered bytes, any partly parsed reply and a sticky
// error, so the Reader can serve a new connection. It keeps its limits, and
// its scratch memory unless that grew large.
func (r *Reader) Reset() {
	if cap(r.buf) > retainBuf {
		r.buf = nil
	}
	r.buf = r.buf[:0]
	r.pos, r.base, r.start, r.scanned = 0, 0, 0, 0
	clear(r.frames)
	r.frames = r.frames[:0]
	r.topAttr = nil
	r.resetScratch()
	r.err = nil
}

// resetScratch empties vals and arena, dropping references into old buffers.
func (r *Reader) resetScratch() {
	clear(r.vals)
	clear(r.arena)
	r.vals = r.vals[:0]
	r.arena = r.arena[:0]
	if cap(r.vals) > retainVals {
		r.vals = nil
	}
	if cap(r.arena) > retainVals {
		r.arena = nil
	}
}

// Next returns the next complete reply. It returns ok == false, and no
// error, when the buffered bytes end before the reply does; the progress made
// is kept, so calling Next again after the next Feed resumes where it
// stopped, whatever the split.
//
// The returned Value is valid only until the next call to Feed, Next or
// Reset (see [Value]). On malformed input or a reply over the [Limits], Next
// returns an error wrapping [ErrProtocol] or [ErrTooLarge]; the stream can no
// longer be trusted, so every later call returns the same error until Reset.
// A server error reply ("-ERR ...") is not an error here: it is a Value of
// Kind Error.
func (r *Reader) Next() (v Value, ok bool, err error) {
	if r.err != nil {
		return Value{}, false, r.err
	}
	if r.lim.MaxDepth == 0 {
		r.lim = r.lim.withDefaults()
	}
	if !r.partial() {
		r.resetScratch()
	}
	for r.pos < len(r.buf) {
		v, st, err := r.step()
		if err != nil {
			r.err = err
			return Value{}, false, err
		}
		switch st {
		case stMore:
			return Value{}, false, nil
		case stOpen:
			continue
		}
		// v is complete: hand it to the innermost open aggregate, closing
		// every aggregate it completes.
		for {
			n := len(r.frames)
			if n == 0 {
				if r.topAttr != nil {
					v.Attrs, r.topAttr = r.topAttr, nil
				}
				r.start = r.base + int64(r.pos)
				return v, true, nil
			}
			f := &r.frames[n-1]
			if f.attr != nil {
				v.Attrs, f.attr = f.attr, nil
			}
			r.vals = append(r.vals, v)
			if len(r.vals)-f.base < f.n {
				break
			}
			kind, elems := f.kind, r.seal(f.base)
			r.frames = r.frames[:n-1]
			if kind == kindAttr {
				r.attach(elems)
				break
			}
			v = Value{Kind: kind, Elems: elems}
		}
	}
	return Value{}, false, nil
}

// seal moves the elements vals[base:] of a finished aggregate to the arena
// and returns them. Growing the arena leaves earlier slices pointing into the
// old array, which keeps their contents.
func (r *Reader) seal(base int) []Value {
	s := len(r.arena)
	r.arena = append(r.arena, r.vals[base:]...)
	clear(r.vals[base:])
	r.vals = r.vals[:base]
	return r.arena[s:len(r.arena):len(r.arena)]
}

// attach records a finished attribute for the next value at the current
// level; consecutive attributes are merged.
func (r *Reader) attach(attr []Value) {
	slot := &r.topAttr
	if n := len(r.frames); n > 0 {
		slot = &r.frames[n-1].attr
	}
	if *slot != nil {
		s := len(r.arena)
		r.arena = append(r.arena, *slot...)
		r.arena = append(r.arena, attr...)
		attr = r.arena[s:len(r.arena):len(r.arena)]
	}
	*slot = attr
}

// Results of step.
const (
	stMore  = iota // more bytes are needed; nothing was consumed
	stValue        // a complete value was parsed
	stOpen         // an aggregate header (or an empty attribute) was consumed
)

// step parses the item that starts at r.pos.
func (r *Reader) step() (Value, int, error) {
	b := r.buf[r.pos:]
	t := b[0]
	switch t {
	case '+', '-', ':', ',', '#', '(', '_':
		line, n, err := r.line(b)
		if err != nil || n == 0 {
			return Value{}, stMore, err
		}
		v, err := r.scalar(t, line)
		if err != nil {
			return Value{}, stMore, err
		}
		r.advance(n)
		return v, stValue, nil

	case '$', '!', '=':
		line, n, err := r.line(b)
		if err != nil || n == 0 {
			return Value{}, stMore, err
		}
		size, err := r.length(line, t == '$')
		if err != nil {
			return Value{}, stMore, err
		}
		if size < 0 {
			r.advance(n)
			return Value{Kind: Null}, stValue, nil
		}
		if size > int64(r.lim.MaxBulk) {
			return Value{}, stMore, r.errf(ErrTooLarge, "bulk length %d over the limit of %d", size, r.lim.MaxBulk)
		}
		end := n + int(size) + 2
		if len(b) < end {
			return Value{}, stMore, nil
		}
		if b[end-2] != '\r' || b[end-1] != '\n' {
			return Value{}, stMore, r.errf(ErrProtocol, "bulk payload of %d bytes not followed by CRLF", size)
		}
		p := b[n : end-2 : end-2]
		v := Value{Kind: BulkString, Str: p}
		switch t {
		case '!':
			v.Kind = Error
		case '=':
			if len(p) < 4 || p[3] != ':' {
				return Value{}, stMore, r.errf(ErrProtocol, "verbatim string without a format prefix")
			}
			v.Kind = VerbatimString
			copy(v.Format[:], p[:3])
			v.Str = p[4:]
		}
		r.advance(end)
		return v, stValue, nil

	case '*', '%', '~', '>', '|':
		line, n, err := r.line(b)
		if err != nil || n == 0 {
			return Value{}, stMore, err
		}
		size, err := r.length(line, t == '*')
		if err != nil {
			return Value{}, stMore, err
		}
		if size < 0 {
			r.advance(n)
			return Value{Kind: Null}, stValue, nil
		}
		if len(r.frames) >= r.lim.MaxDepth {
			return Value{}, stMore, r.errf(ErrTooLarge, "aggregates nested deeper than %d", r.lim.MaxDepth)
		}
		kind := aggKind(t)
		elems := size
		if kind == Map || kind == kindAttr {
			elems = 2 * size // cannot overflow (see length)
		}
		if elems > int64(r.lim.MaxElems) {
			return Value{}, stMore, r.errf(ErrTooLarge, "aggregate of %d elements over the limit of %d", elems, r.lim.MaxElems)
		}
		r.advance(n)
		if elems == 0 {
			if kind == kindAttr {
				return Value{}, stOpen, nil // an empty attribute says nothing
			}
			return Value{Kind: kind}, stValue, nil
		}
		r.frames = append(r.frames, frame{kind: kind, n: int(elems), base: len(r.vals)})
		return Value{}, stOpen, nil
	}
	return Value{}, stMore, r.errf(ErrProtocol, "unknown type byte %q", t)
}

// aggKind maps an aggregate type byte to its Kind.
func aggKind(t byte) Kind {
	switch t {
	case '*':
		return Array
	case '%':
		return Map
	case '~':
		return Set
	case '>':
		return Push
	}
	return kindAttr
}

// advance consumes n bytes.
func (r *Reader) advance(n int) {
	r.pos += n
	r.scanned = 0
}

// line finds the CRLF-terminated line that starts at b[0] (the type byte).
// It returns the content between the type byte and the CR, and the length
// of the whole line; n == 0 means the line is incomplete. Whether a line is
// too long depends only on its first MaxLine+3 bytes, so the verdict does not
// depend on how the input was split.
func (r *Reader) line(b []byte) (content []byte, n int, err error) {
	limit := r.lim.MaxLine + 3 // type byte, content, CRLF
	end := min(len(b), limit)
	if r.scanned < end {
		if i := bytes.IndexByte(b[r.scanned:end], '\n'); i >= 0 {
			i += r.scanned // i >= 1: b[0] is a type byte, not '\n'
			if b[i-1] != '\r' {
				return nil, 0, r.errf(ErrProtocol, "line not terminated by CRLF")
			}
			return b[1 : i-1], i + 1, nil
		}
		r.scanned = end
	}
	if len(b) >= limit {
		return nil, 0, r.errf(ErrTooLarge, "line longer than %d bytes", r.lim.MaxLine)
	}
	return nil, 0, nil
}

// length parses the length in an aggregate or bulk header. It returns -1 for
// "-1" when allowNull is set (RESP2's null bulk string and null array), and
// saturates near math.MaxInt64/4, far above any limit, so that doubling it
// cannot overflow.
func (r *Reader) length(b []byte, allowNull bool) (int64, error) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' && allowNull {
		return -1, nil
	}
	if len(b) == 0 {
		return 0, r.errf(ErrProtocol, "empty length")
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			switch {
			case b[0] == '-':
				return 0, r.errf(ErrProtocol, "negative length %s", quote(b))
			case len(b) == 1 && b[0] == '?':
				return 0, r.errf(ErrProtocol, "streamed RESP3 types are not supported")
			}
			return 0, r.errf(ErrProtocol, "bad length %s", quote(b))
		}
		if n < math.MaxInt64/40 {
			n = n*10 + int64(c-'0')
		} else {
			n = math.MaxInt64 / 4
		}
	}
	return n, nil
}

// scalar builds the value of a one-line reply of type t.
func (r *Reader) scalar(t byte, line []byte) (Value, error) {
	line = line[:len(line):len(line)]
	switch t {
	case '+':
		return Value{Kind: SimpleString, Str: line}, nil
	case '-':
		return Value{Kind: Error, Str: line}, nil
	case ':':
		n, ok := parseInt(line)
		if !ok {
			return Value{}, r.errf(ErrProtocol, "bad integer %s", quote(line))
		}
		return Value{Kind: Integer, Str: line, Int: n}, nil
	case ',':
		f, err := strconv.ParseFloat(string(line), 64)
		if err != nil || len(line) == 0 {
			return Value{}, r.errf(ErrProtocol, "bad double %s", quote(line))
		}
		return Value{Kind: Double, Str: line, Float: f}, nil
	case '#':
		if len(line) == 1 && (line[0] == 't' || line[0] == 'f') {
			v := Value{Kind: Boolean, Str: line}
			if line[0] == 't' {
				v.Int = 1
			}
			return v, nil
		}
		return Value{}, r.errf(ErrProtocol, "bad boolean %s", quote(line))
	case '(':
		if !isBigNumber(line) {
			return Value{}, r.errf(ErrProtocol, "bad big number %s", quote(line))
		}
		return Value{Kind: BigNumber, Str: line}, nil
	}
	// '_'
	if len(line) != 0 {
		return Value{}, r.errf(ErrProtocol, "null with content %s", quote(line))
	}
	return Value{Kind: Null}, nil
}

// parseInt parses an optionally signed decimal int64.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(n), true // n == 1<<63 wraps to math.MinInt64, as it should
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// isBigNumber reports whether b is an optionally signed run of digits.
func isBigNumber(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// errf builds an error wrapping kind, naming the stream offset of the item
// being parsed. The offset does not depend on how the input was split.
func (r *Reader) errf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", kind, fmt.Sprintf(format, args...), r.base+int64(r.pos))
}
