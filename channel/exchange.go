package channel

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/kombu-go/kombu/transport"
)

// TopicPattern returns the regular expression Kombu's topic exchange stores
// for a binding key (key_to_pattern): every character that is neither
// alphanumeric nor one of ".#*" is escaped with a backslash (NUL as \000);
// the key is split on "."; a word that is exactly "*" becomes ".*?[^\.]" and
// a word that is exactly "#" becomes ".*?"; the words are joined with "\."
// and wrapped in "^...$".
//
// The result is on the Redis wire (the binding set member), so it is
// Kombu's string byte for byte. Its meaning differs from AMQP's: "*" matches
// one or more characters the last of which is not a dot (so "a.*.c" matches
// "a.b.x.c"), and the dots around "#" are literal ("a.#" does not match "a").
func TopicPattern(bindingKey string) string {
	var esc strings.Builder
	esc.Grow(len(bindingKey) + 8)
	for _, c := range bindingKey {
		switch {
		case c == '.' || c == '#' || c == '*' || isAlnum(c):
			esc.WriteRune(c)
		case c == 0:
			esc.WriteString(`\000`)
		default:
			esc.WriteByte('\\')
			esc.WriteRune(c)
		}
	}
	words := strings.Split(esc.String(), ".")
	for i, w := range words {
		switch w {
		case "*":
			words[i] = `.*?[^\.]`
		case "#":
			words[i] = `.*?`
		}
	}
	return "^" + strings.Join(words, `\.`) + "$"
}

// isAlnum is Python's str.isalnum for one character: a letter or a number
// of any script.
func isAlnum(c rune) bool { return unicode.IsLetter(c) || unicode.IsNumber(c) }

// patterns caches compiled topic patterns (Kombu caches them too). A nil
// entry records a pattern that does not compile. The cache is reset when it
// grows past maxPatterns, so tables read from a shared broker cannot make it
// grow without bound.
var (
	patterns  sync.Map // string -> *regexp.Regexp (nil: invalid)
	npatterns atomic.Int64
)

const maxPatterns = 10000

func compileTopic(pattern string) *regexp.Regexp {
	if v, ok := patterns.Load(pattern); ok {
		return v.(*regexp.Regexp)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		// Python accepts "\x" for any x; RE2 refuses an escaped letter or
		// non-ASCII character. Kombu escapes non-alphanumerics only, so an
		// escaped non-ASCII symbol (say "\€") is the case to translate.
		re, err = regexp.Compile(reescape(pattern))
		if err != nil {
			re = nil
		}
	}
	if npatterns.Add(1) > maxPatterns {
		patterns.Clear()
		npatterns.Store(1)
	}
	patterns.Store(pattern, re)
	return re
}

// reescape rewrites Python-only escapes of non-ASCII characters as RE2
// literals.
func reescape(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); {
		if p[i] == '\\' && i+1 < len(p) && p[i+1] >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(p[i+1:])
			b.WriteString(regexp.QuoteMeta(string(r)))
			i += 1 + n
			continue
		}
		if p[i] == '\\' && i+1 < len(p) {
			b.WriteString(p[i : i+2])
			i += 2
			continue
		}
		b.WriteByte(p[i])
		i++
	}
	return b.String()
}

// TopicMatch reports whether routingKey matches a topic pattern as stored
// in a binding table (a [TopicPattern] result, possibly written by Python
// Kombu). A pattern that is not a valid regular expression matches nothing.
// Compiled patterns are cached. Safe for concurrent use.
func TopicMatch(pattern, routingKey string) bool {
	re := compileTopic(pattern)
	return re != nil && re.MatchString(routingKey)
}

// HeadersPattern returns the pattern stored for a headers-exchange binding:
// its arguments as compact JSON with sorted keys ("{}" for none). It fails
// when x-match is not one of "all", "any", "all-with-x", "any-with-x" or an
// argument cannot be written as JSON.
func HeadersPattern(args map[string]any) (string, error) {
	if v, ok := args["x-match"]; ok {
		s, _ := v.(string)
		switch s {
		case "all", "any", "all-with-x", "any-with-x":
		default:
			return "", fmt.Errorf("channel: invalid x-match %v: %w", v, transport.ErrPreconditionFailed)
		}
	}
	if len(args) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("channel: headers binding arguments: %w", err)
	}
	return string(b), nil
}

// headersSpec is a parsed headers binding.
type headersSpec struct {
	any   bool // x-match any (else all)
	withX bool // x- keys other than x-match take part
	args  map[string]any
	valid bool
}

var headerSpecs sync.Map // pattern -> *headersSpec

func parseHeaders(pattern string) *headersSpec {
	if v, ok := headerSpecs.Load(pattern); ok {
		return v.(*headersSpec)
	}
	sp := &headersSpec{}
	var args map[string]any
	if err := json.Unmarshal([]byte(pattern), &args); err == nil {
		sp.valid = true
		mode, _ := args["x-match"].(string)
		sp.any = strings.HasPrefix(mode, "any")
		sp.withX = strings.HasSuffix(mode, "-with-x")
		sp.args = make(map[string]any, len(args))
		for k, v := range args {
			if k == "x-match" || (!sp.withX && strings.HasPrefix(k, "x-")) {
				continue
			}
			sp.args[k] = v
		}
	}
	if npatterns.Add(1) > maxPatterns {
		headerSpecs.Clear()
		npatterns.Store(1)
	}
	headerSpecs.Store(pattern, sp)
	return sp
}

// HeadersMatch reports whether message headers match a headers-exchange
// binding pattern ([HeadersPattern]), as RabbitMQ does: with x-match "all"
// (the default) every binding argument must be present with an equal value;
// with "any" at least one must. Arguments starting with "x-" are ignored,
// except with "all-with-x" and "any-with-x". Numbers compare by value
// whatever their Go type. Safe for concurrent use.
func HeadersMatch(pattern string, headers map[string]any) bool {
	sp := parseHeaders(pattern)
	if !sp.valid {
		return false
	}
	if sp.any {
		for k, v := range sp.args {
			if h, ok := headers[k]; ok && valueEqual(v, h) {
				return true
			}
		}
		return false
	}
	for k, v := range sp.args {
		h, ok := headers[k]
		if !ok || !valueEqual(v, h) {
			return false
		}
	}
	return true
}

// valueEqual compares JSON-like values, numbers by value.
func valueEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valueEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !valueEqual(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// RowPattern returns the pattern stored with a binding of the given
// exchange type (see [Row]).
func RowPattern(exchangeType, bindingKey string, args map[string]any) (string, error) {
	switch exchangeType {
	case transport.Topic:
		return TopicPattern(bindingKey), nil
	case transport.Headers:
		return HeadersPattern(args)
	}
	return "", nil
}

// Lookup appends to dst the queues of table that a message with routingKey
// and headers is routed to by an exchange of the given type, each queue
// once, in table order (Kombu returns a set; the order is unspecified
// there). skip names a queue topic routing leaves out (Kombu skips the
// dead-letter queue), as well as empty queue names. An unknown type routes
// as direct.
func Lookup(exchangeType string, table []Row, routingKey string, headers map[string]any, skip string, dst []string) []string {
	start := len(dst)
	for i := range table {
		r := &table[i]
		var ok bool
		switch exchangeType {
		case transport.Fanout:
			ok = true
		case transport.Topic:
			ok = r.Queue != "" && r.Queue != skip && TopicMatch(r.Pattern, routingKey)
		case transport.Headers:
			ok = HeadersMatch(r.Pattern, headers)
		default:
			ok = r.RoutingKey == routingKey
		}
		if ok && !contains(dst[start:], r.Queue) {
			dst = append(dst, r.Queue)
		}
	}
	return dst
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// knownType reports whether the virtual channel routes this exchange type.
func knownType(t string) bool {
	switch t {
	case transport.Direct, transport.Topic, transport.Fanout, transport.Headers:
		return true
	}
	return false
}
