package optmap

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// Reader reads one option map. The zero value reads an empty map.
type Reader struct {
	owner string // "redis", "amqp", ... for error texts
	opts  map[string]any
	known map[string]bool
	err   error
	// refused are keys given but refused (Refuse): known, but not valid.
	refused []string
}

// New returns a Reader of opts for the named transport. opts is not
// modified.
func New(owner string, opts map[string]any) *Reader {
	return &Reader{owner: owner, opts: opts, known: make(map[string]bool)}
}

// Known declares keys as valid without reading them (they are read
// elsewhere, or accepted for Kombu compatibility and documented as
// having no effect). Every typed getter declares its key too.
func (r *Reader) Known(keys ...string) {
	for _, k := range keys {
		r.known[k] = true
	}
}

// Lookup returns the raw value of k and declares k known. A nil value
// counts as absent (Kombu's None).
func (r *Reader) Lookup(k string) (any, bool) {
	r.known[k] = true
	v, ok := r.opts[k]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// Has reports whether k is set (to a non-nil value), and declares it known.
func (r *Reader) Has(k string) bool {
	_, ok := r.Lookup(k)
	return ok
}

// Fail records an error about key k (the first error wins) and returns it.
func (r *Reader) Fail(k string, v any, reason string) error {
	err := &transport.OptionError{Transport: r.owner, Key: k, Value: v, Reason: reason}
	if r.err == nil {
		r.err = err
	}
	return err
}

// String sets *dst to the string value of k, if k is set.
func (r *Reader) String(k string, dst *string) bool {
	v, ok := r.Lookup(k)
	if !ok {
		return false
	}
	switch x := v.(type) {
	case string:
		*dst = x
	case []byte:
		*dst = string(x)
	case fmt.Stringer:
		*dst = x.String()
	default:
		r.Fail(k, v, "want a string")
		return false
	}
	return true
}

// Bool sets *dst from k: a bool, a number (0 is false) or a string such as
// "true", "1", "yes", "off".
func (r *Reader) Bool(k string, dst *bool) bool {
	v, ok := r.Lookup(k)
	if !ok {
		return false
	}
	b, err := AsBool(v)
	if err != nil {
		r.Fail(k, v, "want a bool")
		return false
	}
	*dst = b
	return true
}

// Float sets *dst from a number or a numeric string.
func (r *Reader) Float(k string, dst *float64) bool {
	v, ok := r.Lookup(k)
	if !ok {
		return false
	}
	f, err := AsFloat(v)
	if err != nil {
		r.Fail(k, v, "want a number")
		return false
	}
	*dst = f
	return true
}

// Int sets *dst from an integral number or string.
func (r *Reader) Int(k string, dst *int) bool {
	var f float64
	if !r.Float(k, &f) {
		return false
	}
	if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		r.Fail(k, r.opts[k], "want an integer")
		return false
	}
	*dst = int(f)
	return true
}

// Seconds sets *dst from a number of seconds (Kombu's unit; fractions
// allowed) or a time.Duration.
func (r *Reader) Seconds(k string, dst *time.Duration) bool {
	v, ok := r.Lookup(k)
	if !ok {
		return false
	}
	if d, ok := v.(time.Duration); ok {
		*dst = d
		return true
	}
	f, err := AsFloat(v)
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/1e9 {
		r.Fail(k, v, "want a number of seconds")
		return false
	}
	*dst = time.Duration(f * float64(time.Second))
	return true
}

// Ints sets *dst from a list of integers: a slice, or a string such as
// "0,3,6,9" or "[0, 3, 6, 9]".
func (r *Reader) Ints(k string, dst *[]int) bool {
	v, ok := r.Lookup(k)
	if !ok {
		return false
	}
	out, err := AsInts(v)
	if err != nil {
		r.Fail(k, v, "want a list of integers")
		return false
	}
	*dst = out
	return true
}

// Always declares k, a bool option the transport supports with one value
// only: want is accepted (it is what the transport always does), the other
// value fails with reason why.
func (r *Reader) Always(k string, want bool, why string) {
	var b bool
	if r.Bool(k, &b) && b != want {
		r.Fail(k, b, why)
	}
}

// Refuse declares keys that the transport refuses whatever their value
// (Kombu options with no meaning here): each one given fails with its
// reason. A refused key is not listed among the valid ones.
func (r *Reader) Refuse(reasons map[string]string) {
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, ok := r.opts[k]
		if !ok {
			continue
		}
		r.refused = append(r.refused, k)
		if v != nil {
			r.Fail(k, v, "not supported: "+reasons[k])
		}
	}
}

// ConnectionKeys declares Kombu's connection retry keys and checks their
// values: max_retries (a number, or "none"), interval_start,
// interval_step, interval_max and connect_retries_timeout (seconds).
// Kombu's Connection reads them (_extract_failover_opts), and so does
// messaging.Connection for its connects; a transport that has no
// reconnect policy of its own accepts them for that reader.
func (r *Reader) ConnectionKeys() {
	for _, k := range []string{"max_retries", "interval_start", "interval_step", "interval_max", "connect_retries_timeout"} {
		v, ok := r.Lookup(k)
		if !ok {
			continue
		}
		if s, isStr := v.(string); isStr && k == "max_retries" && strings.EqualFold(strings.TrimSpace(s), "none") {
			continue
		}
		if _, err := AsFloat(v); err != nil {
			r.Fail(k, v, "want a number")
		}
	}
}

// Map returns the map value of k: a map, or JSON object text from a URL.
func (r *Reader) Map(k string) (map[string]any, bool) {
	v, ok := r.Lookup(k)
	if !ok {
		return nil, false
	}
	m, err := AsMap(v)
	if err != nil {
		r.Fail(k, v, "want a map (or JSON object text)")
		return nil, false
	}
	return m, true
}

// OneOf sets *dst from k when its value (compared case-insensitively) is
// one of allowed; dst gets the allowed spelling.
func (r *Reader) OneOf(k string, dst *string, allowed ...string) bool {
	var s string
	if !r.String(k, &s) {
		return false
	}
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			*dst = a
			return true
		}
	}
	r.Fail(k, s, "want one of "+strings.Join(allowed, ", "))
	return false
}

// Err returns the first coercion error, or else a *transport.OptionError
// for the first unknown key (in sorted order) listing the valid ones, or
// nil.
func (r *Reader) Err() error {
	if r.err != nil {
		return r.err
	}
	var unknown []string
	for k := range r.opts {
		if !r.known[k] && !slices.Contains(r.refused, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	valid := make([]string, 0, len(r.known))
	for k := range r.known {
		valid = append(valid, k)
	}
	slices.Sort(valid)
	return &transport.OptionError{
		Transport: r.owner, Key: unknown[0], Value: r.opts[unknown[0]],
		Reason: "unknown option", Unknown: unknown, Valid: valid,
	}
}

// AsBool coerces v to a bool.
func AsBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "t", "true", "yes", "y", "on":
			return true, nil
		case "0", "f", "false", "no", "n", "off", "":
			return false, nil
		}
	case int:
		return x != 0, nil
	case int64:
		return x != 0, nil
	case float64:
		return x != 0, nil
	}
	return false, fmt.Errorf("not a bool: %v", v)
}

// AsFloat coerces v to a float64 (not NaN).
func AsFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case float64:
		if !math.IsNaN(x) {
			return x, nil
		}
	case json.Number:
		return AsFloat(string(x))
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsNaN(f) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("not a number: %v", v)
}

// AsInts coerces v to a list of integers.
func AsInts(v any) ([]int, error) {
	switch x := v.(type) {
	case []int:
		return slices.Clone(x), nil
	case []any:
		out := make([]int, 0, len(x))
		for _, e := range x {
			f, err := AsFloat(e)
			if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
				return nil, fmt.Errorf("not an integer: %v", e)
			}
			out = append(out, int(f))
		}
		return out, nil
	case string:
		s := strings.Trim(strings.TrimSpace(x), "[]()")
		var out []int
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("not a list: %T", v)
}

// AsMap coerces v to a map: a map, or JSON object text.
func AsMap(v any) (map[string]any, error) {
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m, nil
	case string:
		var m map[string]any
		if err := json.Unmarshal([]byte(x), &m); err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("not a JSON object: %q", x)
		}
		return m, nil
	}
	return nil, fmt.Errorf("not a map: %T", v)
}
