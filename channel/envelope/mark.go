package envelope

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// MarkRedelivered returns the envelope with headers.redelivered and
// properties.delivery_info.redelivered set to true, as Kombu's Redis
// restore writes it back (_do_restore_message). Like Python's load, set and
// dump, it keeps everything else: every member keeps its place and its
// value's JSON text (numbers of any size, unknown keys, the body as it
// was); a new member goes last; a missing or null headers, properties or
// delivery_info becomes an object holding the flag. Bytes that are not an
// envelope give an error wrapping [ErrMalformed].
func MarkRedelivered(envelope []byte) ([]byte, error) {
	if _, _, err := decodeEnvelope(envelope, false); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	top, err := jsonMembers(envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	flag := []byte("true")
	headers, err := markMember(top, "headers", func(ms []jsonMember) ([]jsonMember, error) {
		return setMember(ms, "redelivered", flag), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	top = setMember(top, "headers", headers)
	props, err := markMember(top, "properties", func(ms []jsonMember) ([]jsonMember, error) {
		info, err := markMember(ms, "delivery_info", func(ms []jsonMember) ([]jsonMember, error) {
			return setMember(ms, "redelivered", flag), nil
		})
		return setMember(ms, "delivery_info", info), err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	top = setMember(top, "properties", props)
	return appendMembers(make([]byte, 0, len(envelope)+64), top), nil
}

// jsonMember is one member of a JSON object: its decoded key and the JSON
// text of its value.
type jsonMember struct {
	key string
	val []byte
}

// jsonMembers splits a JSON object into its members, in order; a duplicate
// key keeps its first place and its last value (Python's dict).
func jsonMembers(data []byte) ([]jsonMember, error) {
	s := &scanner{data: data}
	var ms []jsonMember
	err := s.object(func(key []byte) error {
		k := string(key)
		v, err := s.raw()
		ms = setMember(ms, k, v)
		return err
	})
	if err == nil {
		err = s.end()
	}
	return ms, err
}

// setMember sets key's value in place, or appends it.
func setMember(ms []jsonMember, key string, val []byte) []jsonMember {
	for i := range ms {
		if ms[i].key == key {
			ms[i].val = val
			return ms
		}
	}
	return append(ms, jsonMember{key: key, val: val})
}

// markMember returns the JSON text of the object member key of ms after
// edit; a missing or null member is edited as an empty object.
func markMember(ms []jsonMember, key string, edit func([]jsonMember) ([]jsonMember, error)) ([]byte, error) {
	var inner []jsonMember
	for _, m := range ms {
		if m.key == key && string(m.val) != "null" {
			var err error
			if inner, err = jsonMembers(m.val); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	inner, err := edit(inner)
	if err != nil {
		return nil, err
	}
	return appendMembers(nil, inner), nil
}

// appendMembers writes an object in Python's json.dumps format.
func appendMembers(b []byte, ms []jsonMember) []byte {
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPyString(b, m.key)
		b = append(b, ": "...)
		b = appendPyJSON(b, m.val)
	}
	return append(b, '}')
}

// appendPyJSON appends valid JSON text in json.dumps' layout: ", " and
// ": " separators, no other whitespace, non-ASCII characters escaped as
// \uXXXX (ensure_ascii). Numbers and escapes keep their text.
func appendPyJSON(b, text []byte) []byte {
	for i := 0; i < len(text); {
		c := text[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
		case ',':
			b = append(b, ", "...)
			i++
		case ':':
			b = append(b, ": "...)
			i++
		case '"':
			b = append(b, '"')
			i++
			for i < len(text) && text[i] != '"' {
				switch c := text[i]; {
				case c == '\\' && i+1 < len(text):
					b = append(b, c, text[i+1])
					i += 2
				case c < utf8.RuneSelf:
					b = append(b, c)
					i++
				default:
					r, size := utf8.DecodeRune(text[i:])
					if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
						b = appendU(appendU(b, r1), r2)
					} else {
						b = appendU(b, r)
					}
					i += size
				}
			}
			if i < len(text) {
				b = append(b, '"')
				i++
			}
		default:
			b = append(b, c)
			i++
		}
	}
	return b
}
