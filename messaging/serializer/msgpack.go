package serializer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// msgpackSerializer is Kombu's msgpack: application/x-msgpack, binary.
// Kombu packs with use_bin_type=True and unpacks with raw=False, so strings
// are msgpack str and bytes are bin, both ways; here string is str and
// []byte is bin. Integers are written in their smallest form. A time.Time is
// written as the msgpack timestamp extension (-1), which Python's msgpack
// reads as msgpack.Timestamp.
func msgpackSerializer() Serializer {
	return Serializer{
		Name:            "msgpack",
		ContentType:     ContentTypeMsgpack,
		ContentEncoding: EncodingBinary,
		Encode:          msgpackEncode,
		Decode:          guardDecode(msgpackDecode),
		DecodeInto:      guardDecodeInto(msgpackDecodeInto),
	}
}

func msgpackEncode(v any) (out []byte, err error) {
	defer recoverInto(&err)
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer func() {
		enc.Reset(nil)
		msgpack.PutEncoder(enc)
	}()
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errExtraData is Python's msgpack.ExtraData: bytes after the first value.
var errExtraData = errors.New("extra data after the first value")

// maxDepth bounds the nesting of arrays and maps in a msgpack body, as
// encoding/json bounds JSON's. The msgpack library recurses once per level
// with no limit, and a body of a few megabytes of one-element arrays would
// otherwise overflow the goroutine stack, a crash no recover can catch.
const maxDepth = 10000

var errTooDeep = fmt.Errorf("nesting deeper than %d levels", maxDepth)

// mpReader walks one msgpack body. The library allocates whatever length a
// str, bin or ext header declares (up to 4 GiB from a 5-byte body) before
// reading, so every header is checked against the bytes actually left
// first: a walk allocates at most about the body's size.
type mpReader struct {
	d    *msgpack.Decoder
	data []byte
	r    *bytes.Reader
}

// withMsgpack runs f on a pooled decoder reading data, and requires f to
// consume all of it.
func withMsgpack(data []byte, f func(m *mpReader) error) error {
	r := bytes.NewReader(data)
	d := msgpack.GetDecoder()
	defer func() {
		d.Reset(nil)
		msgpack.PutDecoder(d)
	}()
	d.Reset(r) // a *bytes.Reader is read directly, without buffering ahead
	if err := f(&mpReader{d: d, data: data, r: r}); err != nil {
		return err
	}
	if r.Len() > 0 {
		return errExtraData
	}
	return nil
}

func msgpackDecode(data []byte) (v any, err error) {
	err = withMsgpack(data, func(m *mpReader) error {
		v, err = m.value(0, true)
		return err
	})
	return v, err
}

func msgpackDecodeInto(data []byte, dst any) error {
	// First prove the body well-formed within its size and depth bounds
	// (the library would recurse without limit into any-typed fields, and
	// allocate declared lengths), then decode.
	if err := withMsgpack(data, func(m *mpReader) error {
		_, err := m.value(0, false)
		return err
	}); err != nil {
		return err
	}
	return withMsgpack(data, func(m *mpReader) error { return m.d.Decode(dst) })
}

// checkHeader validates the variable-length header starting with code c at
// the current position: the payload (str, bin, ext) or the elements (array:
// at least a byte each; map: two) must fit in what is left of the body.
func (m *mpReader) checkHeader(c byte) error {
	var sizeLen, extra int // bytes of length field; ext's type byte
	per := uint64(1)       // minimum bytes per declared unit
	switch c {
	case msgpcode.Bin8, msgpcode.Str8:
		sizeLen = 1
	case msgpcode.Bin16, msgpcode.Str16, msgpcode.Array16:
		sizeLen = 2
	case msgpcode.Bin32, msgpcode.Str32, msgpcode.Array32:
		sizeLen = 4
	case msgpcode.Map16:
		sizeLen, per = 2, 2
	case msgpcode.Map32:
		sizeLen, per = 4, 2
	case msgpcode.Ext8:
		sizeLen, extra = 1, 1
	case msgpcode.Ext16:
		sizeLen, extra = 2, 1
	case msgpcode.Ext32:
		sizeLen, extra = 4, 1
	default:
		return nil // fixed-size, or a fix* form whose size is in the code
	}
	rest := m.data[len(m.data)-m.r.Len():]
	hdr := 1 + sizeLen + extra
	if len(rest) < hdr {
		return errors.New("truncated msgpack header")
	}
	var n uint64
	switch sizeLen {
	case 1:
		n = uint64(rest[1])
	case 2:
		n = uint64(binary.BigEndian.Uint16(rest[1:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(rest[1:]))
	}
	if left := uint64(len(rest) - hdr); n*per > left {
		return fmt.Errorf("msgpack header declares %d items or bytes, but only %d bytes remain", n, left)
	}
	return nil
}

// value reads one value. It descends into arrays and maps itself, counting
// depth, and leaves scalars (including extensions) to the library. With
// build false it only skips, to check structure and bounds.
//
// Maps decode as map[string]any when every key is a string, else as
// map[any]any, like Python's dict. A bin key becomes a string key (Go cannot
// hash a []byte); an array or map key is refused, as Python refuses
// unhashable keys. Numbers are normalized as for every format.
func (m *mpReader) value(depth int, build bool) (any, error) {
	c, err := m.d.PeekCode()
	if err != nil {
		return nil, err
	}
	if err := m.checkHeader(c); err != nil {
		return nil, err
	}
	isArray := msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
	isMap := msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
	switch {
	case !isArray && !isMap && !build:
		return nil, m.d.Skip()
	case !isArray && !isMap:
		v, err := m.d.DecodeInterface()
		return normalize(v), err
	case depth >= maxDepth:
		return nil, errTooDeep
	case isArray:
		return m.array(depth, build)
	}
	return m.dict(depth, build)
}

func (m *mpReader) array(depth int, build bool) (any, error) {
	n, err := m.d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	var out []any
	if build {
		out = make([]any, 0, min(n, 1024))
	}
	for range n {
		v, err := m.value(depth+1, build)
		if err != nil {
			return nil, err
		}
		if build {
			out = append(out, v)
		}
	}
	return out, nil
}

func (m *mpReader) dict(depth int, build bool) (any, error) {
	n, err := m.d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	var sm map[string]any
	var am map[any]any
	if build {
		sm = make(map[string]any, min(n, 64))
	}
	for range n {
		k, err := m.value(depth+1, build)
		if err != nil {
			return nil, err
		}
		v, err := m.value(depth+1, build)
		if err != nil {
			return nil, err
		}
		if !build {
			continue
		}
		if s, ok := k.(string); ok && am == nil {
			sm[s] = v
			continue
		}
		if am == nil {
			am = make(map[any]any, min(n, 64))
			for ks, vs := range sm {
				am[ks] = vs
			}
		}
		switch key := k.(type) {
		case []byte:
			k = string(key)
		case []any, map[string]any, map[any]any:
			return nil, fmt.Errorf("unhashable map key of type %T", k)
		}
		am[k] = v
	}
	if am != nil {
		return am, nil
	}
	return sm, nil
}
