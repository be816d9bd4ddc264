package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Body encodings understood by [Encode] and [Decode]
// (Kombu's properties.body_encoding).
const (
	// BodyBase64 stores the body as standard padded base64: Kombu's default.
	BodyBase64 = "base64"
	// BodyUTF8 stores the body as a JSON string; the body must be valid UTF-8.
	BodyUTF8 = "utf-8"
)

// Encode returns m as Kombu's JSON envelope, the bytes a Kombu virtual
// transport stores in a Redis list or PUBLISHes (kombu-spec §1.4):
//
//	{"body": ..., "content-encoding": ..., "content-type": ..., "headers": {...},
//	 "properties": {<user properties>, "delivery_mode": 2, ["expiration": "ms",]
//	  "delivery_info": {"exchange": ..., "routing_key": ...}, "priority": n,
//	  "body_encoding": "base64", "delivery_tag": ...}}
//
// The formatting is Python's json.dumps: ", " and ": " separators, non-ASCII
// escaped as \uXXXX, so that the output is byte-identical to Kombu's for the
// same message. delivery_info and delivery_tag come from m.DeliveryInfo
// (Exchange, RoutingKey, DeliveryTag, and "redelivered": true when
// Redelivered is set); the caller makes up the tag (a UUID4 string, as Kombu
// does). Header keys and Properties.Extra keys are written in sorted order,
// since Go maps keep none.
//
// bodyEncoding is "base64" (Kombu's default), "utf-8" (the body is written as
// a string and must be valid UTF-8), or "" (the same, with body_encoding null,
// as Kombu writes when the option is None). Any other name is an error.
// Values that JSON cannot carry (NaN, infinities, channels, functions) are an
// error too.
func Encode(m *Message, bodyEncoding string) ([]byte, error) {
	return Append(make([]byte, 0, 256+len(m.Body)*4/3), m, bodyEncoding)
}

// Append is [Encode] appending to dst. On error dst is
// returned unchanged in length.
func Append(dst []byte, m *Message, bodyEncoding string) ([]byte, error) {
	start := len(dst)
	b, err := appendEnvelope(dst, m, bodyEncoding)
	if err != nil {
		return dst[:start], err
	}
	return b, nil
}

func appendEnvelope(b []byte, m *Message, bodyEncoding string) ([]byte, error) {
	b, err := appendBody(b, m.Body, bodyEncoding)
	if err != nil {
		return b, err
	}
	if b, err = appendMiddle(b, m, bodyEncoding); err != nil {
		return b, err
	}
	return appendTail(b, m.DeliveryInfo.DeliveryTag), nil
}

// appendBody writes the envelope's opening and its body.
func appendBody(b, body []byte, bodyEncoding string) ([]byte, error) {
	b = append(b, `{"body": `...)
	switch {
	case strings.EqualFold(bodyEncoding, BodyBase64):
		b = append(b, '"')
		b = base64Std.AppendEncode(b, body)
		b = append(b, '"')
	case bodyEncoding == "" || strings.EqualFold(bodyEncoding, BodyUTF8):
		if !utf8.Valid(body) {
			return b, fmt.Errorf("envelope: body is not valid UTF-8 and body_encoding is %q", bodyEncoding)
		}
		b = appendPyString(b, string(body))
	default:
		return b, fmt.Errorf("envelope: unknown body_encoding %q", bodyEncoding)
	}
	return b, nil
}

// appendMiddle writes what lies between the body and the delivery tag's
// value: everything but those two depends on the message's other fields
// only, which lets [Encoder] reuse it.
func appendMiddle(b []byte, m *Message, bodyEncoding string) ([]byte, error) {
	b = append(b, `, "content-encoding": `...)
	b = appendOptString(b, m.ContentEncoding)
	b = append(b, `, "content-type": `...)
	b = appendOptString(b, m.ContentType)
	b = append(b, `, "headers": `...)
	var err error
	if b, err = appendPyObject(b, m.Headers, 0); err != nil {
		return b, fmt.Errorf("envelope: headers: %w", err)
	}
	b = append(b, `, "properties": {`...)
	p := &m.Properties
	n := 0
	key := func(k string) {
		if n > 0 {
			b = append(b, ", "...)
		}
		n++
		b = appendPyString(b, k)
		b = append(b, ": "...)
	}
	// A typed field that is empty gives way to an Extra value of the same
	// name: Decode keeps a property there when its JSON type does
	// not fit the field (a numeric correlation_id, say).
	extra := func(k string) (err error) {
		if v, ok := p.Extra[k]; ok && v != nil {
			key(k)
			b, err = appendPyValue(b, v, 0)
		}
		return err
	}
	for _, f := range [...]struct{ k, v string }{
		{"correlation_id", p.CorrelationID}, {"reply_to", p.ReplyTo},
		{"message_id", p.MessageID}, {"type", p.Type},
		{"app_id", p.AppID}, {"user_id", p.UserID},
	} {
		if f.v != "" {
			key(f.k)
			b = appendPyString(b, f.v)
		} else if err = extra(f.k); err != nil {
			return b, fmt.Errorf("envelope: property %q: %w", f.k, err)
		}
	}
	if !p.Timestamp.IsZero() {
		key("timestamp")
		if b, err = appendTimestamp(b, p.Timestamp); err != nil {
			return b, err
		}
	} else if err = extra("timestamp"); err != nil {
		return b, fmt.Errorf("envelope: property \"timestamp\": %w", err)
	}
	if len(p.Extra) > 0 {
		for _, k := range sortedKeys(p.Extra) {
			if reservedProperty(k) {
				continue
			}
			key(k)
			if b, err = appendPyValue(b, p.Extra[k], 0); err != nil {
				return b, fmt.Errorf("envelope: property %q: %w", k, err)
			}
		}
	}
	key("delivery_mode")
	dm := p.DeliveryMode
	if dm == 0 {
		dm = 2
	}
	b = strconv.AppendInt(b, int64(dm), 10)
	// delivery_mode is always there: the keys below follow it, written
	// as they are.
	if p.Expiration != "" {
		b = append(b, `, "expiration": `...)
		b = appendPyString(b, p.Expiration)
	} else if err = extra("expiration"); err != nil {
		return b, fmt.Errorf("envelope: property \"expiration\": %w", err)
	}
	b = append(b, `, "delivery_info": {"exchange": `...)
	b = appendPyString(b, m.DeliveryInfo.Exchange)
	b = append(b, `, "routing_key": `...)
	b = appendPyString(b, m.DeliveryInfo.RoutingKey)
	if m.DeliveryInfo.Redelivered {
		b = append(b, `, "redelivered": true`...)
	}
	b = append(b, `}, "priority": `...)
	b = strconv.AppendInt(b, int64(p.Priority), 10)
	b = append(b, `, "body_encoding": `...)
	if bodyEncoding == "" {
		b = append(b, "null"...)
	} else {
		b = appendPyString(b, bodyEncoding)
	}
	return append(b, `, "delivery_tag": `...), nil
}

// appendTail writes the delivery tag's value and closes the envelope.
func appendTail(b []byte, tag string) []byte {
	b = appendPyString(b, tag)
	return append(b, "}}"...)
}

// reservedProperty reports the property keys that Encode writes from
// typed fields; an Extra entry with such a key is written only in place of an
// empty string field (or a zero Timestamp), never in addition to it.
func reservedProperty(k string) bool {
	switch k {
	case "correlation_id", "reply_to", "message_id", "type", "app_id", "user_id", "timestamp",
		"delivery_mode", "expiration", "delivery_info", "priority", "body_encoding", "delivery_tag":
		return true
	}
	return false
}

// appendTimestamp writes whole seconds as an integer (the AMQP form) and a
// time with a fraction as Python's float seconds (time.time()).
func appendTimestamp(b []byte, t time.Time) ([]byte, error) {
	if t.Nanosecond() == 0 {
		return strconv.AppendInt(b, t.Unix(), 10), nil
	}
	return appendPyFloat(b, float64(t.Unix())+float64(t.Nanosecond())/1e9)
}

func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendPyString(b, s)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// maxDepth bounds the nesting of header values, so that a cyclic structure
// is an error rather than a stack overflow.
const maxDepth = 10000

var errTooDeep = fmt.Errorf("envelope: value nested deeper than %d levels (cyclic?)", maxDepth)

func appendPyObject(b []byte, m map[string]any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return b, errTooDeep
	}
	if len(m) == 0 {
		return append(b, "{}"...), nil
	}
	b = append(b, '{')
	var err error
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPyString(b, k)
		b = append(b, ": "...)
		if b, err = appendPyValue(b, m[k], depth+1); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendPyValue writes v as Python's json.dumps would. Values of types other
// than the JSON-compatible ones go through encoding/json first.
func appendPyValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return b, errTooDeep
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendPyString(b, x), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case float32:
		return appendPyFloat(b, float64(x))
	case float64:
		return appendPyFloat(b, x)
	case json.Number:
		return appendNumber(b, x)
	case []any:
		if len(x) == 0 {
			return append(b, "[]"...), nil
		}
		b = append(b, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			if b, err = appendPyValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case []string:
		if len(x) == 0 {
			return append(b, "[]"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPyString(b, e)
		}
		return append(b, ']'), nil
	case map[string]any:
		return appendPyObject(b, x, depth)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return appendPyObject(b, m, depth)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return append(b, "null"...), nil
	}
	// Anything else: let encoding/json say what it means, then write that
	// in Python's format.
	raw, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	generic, err := decodeJSONValue(raw)
	if err != nil {
		return b, err
	}
	return appendPyValue(b, generic, depth+1)
}

func appendNumber(b []byte, n json.Number) ([]byte, error) {
	if i, err := n.Int64(); err == nil {
		return strconv.AppendInt(b, i, 10), nil
	}
	if !json.Valid([]byte(n)) {
		return b, fmt.Errorf("envelope: invalid number %q", string(n))
	}
	if !strings.ContainsAny(string(n), ".eE") { // an integer beyond int64: as is
		return append(b, n...), nil
	}
	f, err := n.Float64()
	if err != nil {
		return b, err
	}
	return appendPyFloat(b, f)
}

// appendPyFloat writes f like Python's float repr: the shortest digits that
// round-trip, fixed notation with at least one decimal for exponents in
// [-4, 16), otherwise d.ddde±XX.
func appendPyFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("envelope: %v cannot be written as JSON", f)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...), nil
		}
		return append(b, "0.0"...), nil
	}
	exp := int(math.Floor(math.Log10(math.Abs(f))))
	// Log10 can be off by one near powers of ten; the 'e' form is exact.
	e := strconv.AppendFloat(nil, f, 'e', -1, 64)
	if i := bytes.IndexByte(e, 'e'); i >= 0 {
		if x, err := strconv.Atoi(string(e[i+1:])); err == nil {
			exp = x
		}
	}
	if exp < -4 || exp >= 16 {
		return append(b, e...), nil
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, ".0"...)
	}
	return b, nil
}

var base64Std = base64.StdEncoding

// Decode parses a Kombu JSON envelope, as found in a Redis list, a
// PUBLISH payload or the first element of an unacked record, into a Message.
//
// The envelope must be a Kombu message: a JSON object with a string "body"
// and a "properties" object holding a "delivery_tag" (a non-empty string,
// or a number). Every field Kombu itself reads must have its JSON type:
// content-type, content-encoding and body_encoding strings or null, headers
// and delivery_info objects or null, delivery_info's exchange and
// routing_key strings or null, priority and delivery_mode numbers or null.
// Strings must be valid UTF-8. Anything else (raw bytes, {}, an envelope
// without body or delivery_tag, "priority": "high") is an error wrapping
// [ErrMalformed], so that a transport delivers it as a decode error
// (Message.Err), never as a message. (Kombu raises on most of these while
// it reads the message, and loses it: KeyError for a missing properties or
// delivery_tag, a JSON or base64 error for the rest; it passes a missing
// body as None and a priority of the wrong type through.)
//
// Within those rules it accepts any JSON formatting (Python's or compact),
// and is as lenient as Kombu where Kombu is:
//   - body_encoding absent, null or "utf-8": the body string is the body;
//     "base64": the body is decoded like Python's base64.b64decode (characters
//     outside the alphabet are skipped, data after the padding is ignored);
//     an empty body is never decoded;
//   - redelivered is read from the top-level "redelivered" key (Kombu's
//     generic restore), headers.redelivered and delivery_info.redelivered
//     (Redis ack emulation); any of them set gives DeliveryInfo.Redelivered;
//   - properties the Properties struct does not name, and named ones whose
//     JSON type does not fit the field (a numeric correlation_id, say), are
//     kept in Properties.Extra; header and Extra values are JSON-compatible
//     Go values (string, int64, float64, bool, nil, []any, map[string]any).
//     Kombu 5.3's {"__type__": ..., "__value__": ...} objects are left as
//     such data;
//   - a missing or null delivery_mode, or a number outside 1..255, gives 2;
//     a missing priority, or a number that is not an integer, 0; escaped
//     lone surrogates (\ud800) become U+FFFD, as in encoding/json.
func Decode(data []byte) (*Message, error) {
	m, _, err := decodeEnvelope(data, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return m, nil
}

var (
	errNotObject = errors.New("not a JSON object")
	errNoBody    = errors.New(`no "body": not a Kombu message`)
	errNoProps   = errors.New(`no "properties" object: not a Kombu message`)
	errNoTag     = errors.New(`no "delivery_tag" in properties: not a Kombu message`)
)

// decodeEnvelope parses an envelope. strict applies the rules of
// Decode; without it (MarkRedelivered, which must mark whatever a
// restore finds, as Kombu's does) only the JSON structure is checked: a
// missing body or properties is allowed, a body that is not a string is
// kept as its JSON text, and fields of the wrong type are read as absent.
func decodeEnvelope(data []byte, strict bool) (*Message, string, error) {
	m := &Message{Properties: Properties{DeliveryMode: 2}}
	s := &scanner{data: data, strict: strict}
	var body []byte
	var bodyStr, haveBody, haveProps, haveTag bool
	var bodyEncoding string
	var topRedelivered, infoRedelivered bool
	// Duplicate keys: the last one wins, as in Python.
	err := s.object(func(key []byte) (err error) {
		switch string(key) {
		case "body":
			haveBody = true
			// A string body is read once, here: a base64 body can be
			// megabytes, and this runs on the hub.
			if bodyStr = s.ws() == '"'; bodyStr {
				var b []byte
				if b, err = s.strBytes(); err == nil && len(b) > 0 && len(s.scratch) > 0 && &b[0] == &s.scratch[0] {
					b = slices.Clone(b) // the scratch buffer is reused
				}
				body = b
				return err
			}
			if strict {
				return errors.New("body: not a string")
			}
			body, err = s.raw()
		case "content-encoding":
			m.ContentEncoding, err = s.optString("content-encoding")
		case "content-type":
			m.ContentType, err = s.optString("content-type")
		case "headers":
			m.Headers, err = s.optObject("headers")
		case "properties":
			haveProps = s.ws() == '{'
			err = s.properties(m, &bodyEncoding, &infoRedelivered, &haveTag)
		case "redelivered":
			topRedelivered = s.ws() == 't'
			err = s.skip()
		default:
			err = s.skip()
		}
		return err
	})
	if err == nil {
		err = s.end()
	}
	if err == nil && strict {
		switch {
		case !haveBody:
			err = errNoBody
		case !haveProps:
			err = errNoProps
		case !haveTag:
			err = errNoTag
		}
	}
	if err != nil {
		return nil, "", err
	}
	if r, ok := m.Headers["redelivered"].(bool); ok && r {
		topRedelivered = true
	}
	m.DeliveryInfo.Redelivered = topRedelivered || infoRedelivered
	if m.Body, err = decodeBody(body, bodyStr, bodyEncoding); err != nil {
		return nil, "", fmt.Errorf("body: %w", err)
	}
	return m, bodyEncoding, nil
}

func (s *scanner) optString(what string) (string, error) {
	switch s.ws() {
	case 'n':
		return "", s.literal("null")
	case '"':
		return s.str()
	}
	return "", fmt.Errorf("%s: not a string", what)
}

func (s *scanner) optObject(what string) (map[string]any, error) {
	switch s.ws() {
	case 'n':
		return nil, s.literal("null")
	case '{':
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		if m := v.(map[string]any); len(m) > 0 {
			return m, nil
		}
		return nil, nil
	}
	return nil, fmt.Errorf("%s: %w", what, errNotObject)
}

// properties reads the properties object into m.Properties and
// m.DeliveryInfo, and returns body_encoding, delivery_info.redelivered and
// whether a usable delivery_tag was there through the pointers.
func (s *scanner) properties(m *Message, bodyEncoding *string, redelivered, haveTag *bool) error {
	switch s.ws() {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		return fmt.Errorf("properties: %w", errNotObject)
	}
	p := &m.Properties
	setExtra := func(k string, v any) {
		if v == nil {
			delete(p.Extra, k)
			return
		}
		if p.Extra == nil {
			p.Extra = make(map[string]any)
		}
		p.Extra[k] = v
	}
	return s.object(func(key []byte) error {
		var dst *string
		switch string(key) {
		case "correlation_id":
			dst = &p.CorrelationID
		case "reply_to":
			dst = &p.ReplyTo
		case "message_id":
			dst = &p.MessageID
		case "type":
			dst = &p.Type
		case "app_id":
			dst = &p.AppID
		case "user_id":
			dst = &p.UserID
		case "expiration":
			dst = &p.Expiration
		case "timestamp":
			v, err := s.value()
			if err != nil {
				return err
			}
			p.Timestamp = time.Time{}
			if f, ok := toFloat(v); ok && math.Abs(f) < 1<<62/1e9 {
				sec := math.Floor(f)
				p.Timestamp = time.Unix(int64(sec), int64(math.Round((f-sec)*1e9)))
				v = nil
			}
			setExtra("timestamp", v)
			return nil
		case "delivery_mode":
			v, err := s.numberOrNull("delivery_mode")
			p.DeliveryMode = 2
			if f, ok := toFloat(v); ok && f >= 1 && f <= 255 && f == math.Trunc(f) {
				p.DeliveryMode = uint8(f)
			}
			return err
		case "priority":
			v, err := s.numberOrNull("priority")
			p.Priority = 0
			if f, ok := toFloat(v); ok && f == math.Trunc(f) && math.Abs(f) <= math.MaxInt32 {
				p.Priority = int(f)
			}
			return err
		case "body_encoding":
			v, err := s.optString("body_encoding")
			*bodyEncoding = v
			return err
		case "delivery_tag":
			m.DeliveryInfo.DeliveryTag = ""
			*haveTag = false
			switch s.ws() {
			case '"':
				v, err := s.str()
				m.DeliveryInfo.DeliveryTag = v
				*haveTag = v != ""
				return err
			case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
				v, err := s.number()
				m.DeliveryInfo.DeliveryTag = string(v)
				*haveTag = true
				return err
			}
			return s.skip()
		case "delivery_info":
			return s.deliveryInfo(&m.DeliveryInfo, redelivered)
		}
		if dst != nil && s.ws() == '"' {
			v, err := s.str()
			*dst = v
			delete(p.Extra, string(key))
			return err
		}
		k := string(key)
		v, err := s.value()
		if dst != nil {
			*dst = ""
		}
		setExtra(k, v)
		return err
	})
}

func (s *scanner) deliveryInfo(di *DeliveryInfo, redelivered *bool) error {
	switch s.ws() {
	case 'n':
		return s.literal("null")
	case '{':
	default:
		return fmt.Errorf("delivery_info: %w", errNotObject)
	}
	di.Exchange, di.RoutingKey, *redelivered = "", "", false
	return s.object(func(key []byte) error {
		var dst *string
		switch string(key) {
		case "exchange":
			dst = &di.Exchange
		case "routing_key":
			dst = &di.RoutingKey
		case "redelivered":
			*redelivered = s.ws() == 't'
			return s.skip()
		default:
			return s.skip()
		}
		if s.ws() == '"' {
			v, err := s.str()
			*dst = v
			return err
		}
		*dst = ""
		if s.strict && s.ws() != 'n' {
			return fmt.Errorf("delivery_info: %s: not a string", key)
		}
		return s.skip()
	})
}

// numberOrNull reads a number or null; in strict mode any other value is
// an error, otherwise it is read (and then ignored by the caller).
func (s *scanner) numberOrNull(what string) (any, error) {
	switch c := s.ws(); {
	case c == 'n':
		return nil, s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.value()
	case s.strict:
		return nil, fmt.Errorf("%s: not a number", what)
	}
	return s.value()
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// decodeBody turns the body member into bytes: str is the decoded string
// when isStr, else the member's JSON text (or nil when it was missing).
func decodeBody(str []byte, isStr bool, bodyEncoding string) ([]byte, error) {
	if !isStr {
		s := &scanner{data: str}
		switch s.ws() {
		case 0, 'n':
			return nil, nil
		}
		if bodyEncoding != "" && !strings.EqualFold(bodyEncoding, BodyUTF8) {
			return nil, fmt.Errorf("a %s body must be a string", bodyEncoding)
		}
		return slices.Clone(str), nil
	}
	if len(str) == 0 {
		return nil, nil
	}
	switch {
	case bodyEncoding == "" || strings.EqualFold(bodyEncoding, BodyUTF8):
		return slices.Clone(str), nil
	case strings.EqualFold(bodyEncoding, BodyBase64):
		return pyB64Decode(str)
	}
	return nil, fmt.Errorf("unknown body_encoding %q", bodyEncoding)
}
