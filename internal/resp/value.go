package resp

import (
	"bytes"
	"strconv"
)

// Kind is the type of a reply, named after the RESP type that carries it.
type Kind uint8

// The reply kinds. The comment after each shows its wire form.
const (
	// Invalid is the Kind of the zero Value; no reply has it.
	Invalid Kind = iota
	// SimpleString: "+OK\r\n".
	SimpleString
	// Error: "-ERR message\r\n", and the RESP3 blob error "!N\r\n<N bytes>\r\n".
	Error
	// Integer: ":1000\r\n" (an optional + or - sign, int64 range).
	Integer
	// BulkString: "$N\r\n<N bytes>\r\n".
	BulkString
	// Array: "*N\r\n" followed by N replies.
	Array
	// Null: the RESP2 null bulk string "$-1\r\n", the RESP2 null array
	// "*-1\r\n" and the RESP3 null "_\r\n". BRPOP's timeout reply is one.
	Null
	// Double: ",3.14\r\n", also ",inf\r\n", ",-inf\r\n" and ",nan\r\n" (RESP3).
	Double
	// Boolean: "#t\r\n" or "#f\r\n" (RESP3).
	Boolean
	// BigNumber: "(3492890328409238509324850943850943825024385\r\n" (RESP3).
	BigNumber
	// VerbatimString: "=N\r\ntxt:<N-4 bytes>\r\n" (RESP3).
	VerbatimString
	// Map: "%N\r\n" followed by N key/value pairs (RESP3), e.g. HELLO's reply.
	Map
	// Set: "~N\r\n" followed by N replies (RESP3).
	Set
	// Push: ">N\r\n" followed by N replies (RESP3 out-of-band data, such as
	// pub/sub "message" and "pmessage" deliveries).
	Push
)

var kindNames = [...]string{
	Invalid:        "Invalid",
	SimpleString:   "SimpleString",
	Error:          "Error",
	Integer:        "Integer",
	BulkString:     "BulkString",
	Array:          "Array",
	Null:           "Null",
	Double:         "Double",
	Boolean:        "Boolean",
	BigNumber:      "BigNumber",
	VerbatimString: "VerbatimString",
	Map:            "Map",
	Set:            "Set",
	Push:           "Push",
}

// String returns the name of the kind, e.g. "BulkString".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one parsed reply.
//
// A Value returned by [Reader.Next] does not own its memory: Str points into
// the reader's input buffer and Elems and Attrs into its scratch space, so the
// Value (and everything reachable from it) is valid only until the next call
// to [Reader.Feed], [Reader.Next] or [Reader.Reset] on that reader. Use
// [Value.Clone] to keep it longer. A Value built or cloned by the caller has
// no such restriction.
type Value struct {
	// Kind says which fields are meaningful.
	Kind Kind
	// Format is the three-byte format of a VerbatimString, such as "txt" or
	// "mkd"; zero for other kinds.
	Format [3]byte
	// Str is the text of every scalar kind: the content of SimpleString,
	// Error, BulkString and VerbatimString (without its "txt:" prefix), and
	// the digits of Integer, Double, BigNumber and Boolean ("t" or "f") as
	// they were sent. It is nil for Null and the aggregate kinds.
	Str []byte
	// Int is the value of an Integer, and 1 or 0 for a Boolean.
	Int int64
	// Float is the value of a Double.
	Float float64
	// Elems holds the elements of an Array, Set or Push, and the keys and
	// values of a Map, flattened as k1, v1, k2, v2... It is nil when the
	// aggregate is empty.
	Elems []Value
	// Attrs holds the RESP3 attributes ("|N\r\n" followed by N key/value
	// pairs) that the server sent just before this reply, flattened like a
	// Map's Elems; nil when there were none. Attributes are out-of-band
	// metadata and never count as a reply or an element of their own.
	Attrs []Value
}

// IsNull reports whether v is a null reply ($-1, *-1 or _).
func (v Value) IsNull() bool { return v.Kind == Null }

// Bytes returns v.Str: the text of a scalar reply, nil for Null and
// aggregates. The slice is not a copy (see [Value] for how long it is valid).
func (v Value) Bytes() []byte { return v.Str }

// Bool returns the value of a Boolean reply; it returns false for any other
// kind.
func (v Value) Bool() bool { return v.Kind == Boolean && v.Int != 0 }

// Array returns the elements of an Array, Set or Push reply, and nil for
// every other kind (a Map's pairs are in Elems).
func (v Value) Array() []Value {
	switch v.Kind {
	case Array, Set, Push:
		return v.Elems
	}
	return nil
}

// Err returns the server error carried by an Error reply as a [*RedisError],
// and nil for every other kind. The message is copied.
func (v Value) Err() error {
	if v.Kind != Error {
		return nil
	}
	return &RedisError{Msg: string(v.Str)}
}

// Lookup returns the value stored under key in a Map reply, comparing key
// with the text of each key. It returns false if v is not a Map or has no
// such key. It is a linear scan, meant for small maps such as HELLO's reply.
func (v Value) Lookup(key string) (Value, bool) {
	if v.Kind != Map {
		return Value{}, false
	}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		if string(v.Elems[i].Str) == key {
			return v.Elems[i+1], true
		}
	}
	return Value{}, false
}

// String returns the text of a scalar reply (a copy of Str), "" for Null,
// and for an aggregate a redis-cli-like rendering meant for logs and test
// failures, e.g. `["queue" "body" (nil)]`; that rendering is not a stable
// format.
func (v Value) String() string {
	switch v.Kind {
	case Array, Set, Push, Map:
		return string(v.appendDebug(nil))
	}
	return string(v.Str)
}

// appendDebug renders v, quoting strings so that nested values stay
// unambiguous.
func (v Value) appendDebug(dst []byte) []byte {
	switch v.Kind {
	case Null:
		return append(dst, "(nil)"...)
	case Invalid:
		return append(dst, "(invalid)"...)
	case Integer, Double, BigNumber:
		return append(dst, v.Str...)
	case Boolean:
		return strconv.AppendBool(dst, v.Bool())
	case Error:
		dst = append(dst, "(error "...)
		dst = strconv.AppendQuote(dst, string(v.Str))
		return append(dst, ')')
	case Array, Set, Push, Map:
		open, close := byte('['), byte(']')
		switch v.Kind {
		case Set:
			open, close = '~', '~'
		case Push:
			open, close = '<', '>'
		case Map:
			open, close = '{', '}'
		}
		dst = append(dst, open)
		for i, e := range v.Elems {
			if i > 0 {
				if v.Kind == Map && i%2 == 1 {
					dst = append(dst, ':')
				}
				dst = append(dst, ' ')
			}
			dst = e.appendDebug(dst)
		}
		return append(dst, close)
	}
	return strconv.AppendQuote(dst, string(v.Str))
}

// Clone returns a deep copy of v that owns all its memory and stays valid
// after the reader that produced v moves on. It makes at most two
// allocations: one for all the bytes and one for all the nested values.
func (v Value) Clone() Value {
	nb, nv := v.size()
	var c cloner
	if nb > 0 {
		c.b = make([]byte, 0, nb)
	}
	if nv > 0 {
		c.v = make([]Value, 0, nv)
	}
	return c.clone(v)
}

// size returns how many bytes and nested values v holds in total.
func (v Value) size() (nb, nv int) {
	nb = len(v.Str)
	nv = len(v.Elems) + len(v.Attrs)
	for _, e := range v.Elems {
		b, n := e.size()
		nb, nv = nb+b, nv+n
	}
	for _, e := range v.Attrs {
		b, n := e.size()
		nb, nv = nb+b, nv+n
	}
	return nb, nv
}

// cloner copies values into two preallocated arenas.
type cloner struct {
	b []byte
	v []Value
}

func (c *cloner) clone(v Value) Value {
	out := v
	if v.Str != nil {
		s := len(c.b)
		c.b = append(c.b, v.Str...)
		out.Str = c.b[s:len(c.b):len(c.b)]
	}
	out.Elems = c.cloneSlice(v.Elems)
	out.Attrs = c.cloneSlice(v.Attrs)
	return out
}

func (c *cloner) cloneSlice(vs []Value) []Value {
	if len(vs) == 0 {
		return nil
	}
	// Reserve the slots first so that the children's own elements land
	// after them; the arena was sized exactly, so it never reallocates.
	s := len(c.v)
	c.v = c.v[:s+len(vs)]
	dst := c.v[s : s+len(vs) : s+len(vs)]
	for i, e := range vs {
		dst[i] = c.clone(e)
	}
	return dst
}

// Equal reports whether a and b are the same reply: same kind and contents,
// element by element, attributes included. Two Double NaNs are equal, and a
// nil Str equals an empty one.
func Equal(a, b Value) bool {
	if a.Kind != b.Kind || a.Format != b.Format || a.Int != b.Int ||
		!bytes.Equal(a.Str, b.Str) || len(a.Elems) != len(b.Elems) || len(a.Attrs) != len(b.Attrs) {
		return false
	}
	if a.Float != b.Float && (a.Float == a.Float || b.Float == b.Float) {
		return false // different, and not both NaN
	}
	for i := range a.Elems {
		if !Equal(a.Elems[i], b.Elems[i]) {
			return false
		}
	}
	for i := range a.Attrs {
		if !Equal(a.Attrs[i], b.Attrs[i]) {
			return false
		}
	}
	return true
}
