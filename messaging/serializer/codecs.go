package serializer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// yamlSerializer is Kombu's yaml (PyYAML safe_dump/safe_load):
// application/x-yaml, utf-8. Only the first document is read; more than
// one is an error, as for safe_load.
func yamlSerializer() Serializer {
	return Serializer{
		Name:            "yaml",
		ContentType:     ContentTypeYAML,
		ContentEncoding: EncodingUTF8,
		Encode:          yamlEncode,
		Decode:          guardDecode(yamlDecode),
		DecodeInto:      guardDecodeInto(yamlDecodeInto),
	}
}

func yamlEncode(v any) (out []byte, err error) {
	defer recoverInto(&err)
	return yaml.Marshal(v)
}

func yamlDecode(data []byte) (any, error) {
	var v any
	if err := yamlDecodeInto(data, &v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

func yamlDecodeInto(data []byte, dst any) error {
	d := yaml.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(dst); err != nil {
		return err
	}
	var extra yaml.Node
	if err := d.Decode(&extra); err != io.EOF {
		return errors.New("expected a single YAML document")
	}
	return nil
}

// pickleSerializer knows pickle's name and content type, so that accept
// lists naming it resolve and errors name it, but refuses both directions.
func pickleSerializer() Serializer {
	refuse := func([]byte) (any, error) { return nil, ErrPickleUnsupported }
	return Serializer{
		Name:            "pickle",
		ContentType:     ContentTypePickle,
		ContentEncoding: EncodingBinary,
		Encode:          func(any) ([]byte, error) { return nil, ErrPickleUnsupported },
		Decode:          refuse,
	}
}

// textSerializer names what Kombu sends for a str body without a
// serializer: text/plain, utf-8. It only encodes (a string or []byte holding
// UTF-8); Loads decodes text/plain by its content encoding, as Kombu does.
func textSerializer() Serializer {
	return Serializer{
		Name:            "text",
		ContentType:     ContentTypeText,
		ContentEncoding: EncodingUTF8,
		Encode: func(v any) ([]byte, error) {
			var b []byte
			switch x := v.(type) {
			case string:
				b = []byte(x)
			case []byte:
				b = x
			default:
				return nil, fmt.Errorf("text needs a string or []byte, got %T", v)
			}
			if !utf8.Valid(b) {
				return nil, errInvalidUTF8
			}
			return b, nil
		},
	}
}

// decodeByEncoding is Loads step 5 for a content type without a decoder:
// text unless the encoding says binary.
func decodeByEncoding(body []byte, ct, encoding string) (any, error) {
	enc := strings.ToLower(encoding)
	if enc == "" {
		enc = EncodingUTF8
	}
	if enc == EncodingBinary || enc == "ascii-8bit" {
		return body, nil
	}
	s, err := decodeText(body, enc)
	if err != nil {
		return nil, &DecodeError{ContentType: ct, Err: err}
	}
	return s, nil
}

// decodeText decodes bytes with a Python codec name (normalized as Python
// does: '-' and ' ' read as '_'). utf-8, ascii and latin-1 are supported.
func decodeText(b []byte, encoding string) (string, error) {
	switch strings.NewReplacer("-", "_", " ", "_").Replace(encoding) {
	case "utf_8", "utf8", "u8", "utf", "cp65001":
		if !utf8.Valid(b) {
			return "", errInvalidUTF8
		}
		return string(b), nil
	case "ascii", "us_ascii", "646":
		for _, c := range b {
			if c >= 0x80 {
				return "", fmt.Errorf("byte %#x is not ASCII", c)
			}
		}
		return string(b), nil
	case "latin_1", "latin1", "latin", "l1", "iso_8859_1", "iso8859_1", "8859", "cp819":
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), nil
	}
	return "", fmt.Errorf("unsupported content encoding %q", encoding)
}

// normalize gives decoded msgpack and yaml values the shapes JSON decoding
// has: every integer type becomes int64 (uint64 only above MaxInt64),
// float32 becomes float64. It works in place on slices and string-keyed
// maps.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint:
		return normalizeUint(uint64(x))
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return normalizeUint(x)
	case float32:
		return float64(x)
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case map[any]any:
		out := make(map[any]any, len(x))
		for k, e := range x {
			out[normalize(k)] = normalize(e)
		}
		return out
	}
	return v
}

func normalizeUint(u uint64) any {
	if u <= math.MaxInt64 {
		return int64(u)
	}
	return u
}

// guardDecode and guardDecodeInto turn a panic inside a third-party decoder
// into an error: bodies come from the network, and one malformed message
// must not take the consumer down.
func guardDecode(f func([]byte) (any, error)) func([]byte) (any, error) {
	return func(data []byte) (v any, err error) {
		defer recoverInto(&err)
		return f(data)
	}
}

func guardDecodeInto(f func([]byte, any) error) func([]byte, any) error {
	return func(data []byte, dst any) (err error) {
		defer recoverInto(&err)
		return f(data, dst)
	}
}

func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("codec panicked: %v", r)
	}
}
