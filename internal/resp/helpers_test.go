package resp_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/kombu-go/kombu/internal/resp"
)

// Constructors for expected values.

func simple(s string) resp.Value { return resp.Value{Kind: resp.SimpleString, Str: []byte(s)} }
func errv(s string) resp.Value   { return resp.Value{Kind: resp.Error, Str: []byte(s)} }
func bulk(s string) resp.Value   { return resp.Value{Kind: resp.BulkString, Str: []byte(s)} }
func null() resp.Value           { return resp.Value{Kind: resp.Null} }
func big(s string) resp.Value    { return resp.Value{Kind: resp.BigNumber, Str: []byte(s)} }

func intv(n int64) resp.Value { return intText(strconv.FormatInt(n, 10), n) }
func intText(text string, n int64) resp.Value {
	return resp.Value{Kind: resp.Integer, Str: []byte(text), Int: n}
}

func dbl(text string, f float64) resp.Value {
	return resp.Value{Kind: resp.Double, Str: []byte(text), Float: f}
}

func boolean(b bool) resp.Value {
	if b {
		return resp.Value{Kind: resp.Boolean, Str: []byte("t"), Int: 1}
	}
	return resp.Value{Kind: resp.Boolean, Str: []byte("f")}
}

func verb(format, s string) resp.Value {
	v := resp.Value{Kind: resp.VerbatimString, Str: []byte(s)}
	copy(v.Format[:], format)
	return v
}

func agg(k resp.Kind, vs ...resp.Value) resp.Value {
	if len(vs) == 0 {
		vs = nil
	}
	return resp.Value{Kind: k, Elems: vs}
}

func arr(vs ...resp.Value) resp.Value  { return agg(resp.Array, vs...) }
func mapv(vs ...resp.Value) resp.Value { return agg(resp.Map, vs...) }
func set(vs ...resp.Value) resp.Value  { return agg(resp.Set, vs...) }
func push(vs ...resp.Value) resp.Value { return agg(resp.Push, vs...) }

func withAttrs(v resp.Value, attrs ...resp.Value) resp.Value {
	v.Attrs = attrs
	return v
}

// bs returns the RESP bulk string encoding of s.
func bs(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// encode appends the RESP3 encoding of v (attributes first) to dst. It is the
// test's independent writer for every kind, used for round trips.
func encode(dst []byte, v resp.Value) []byte {
	if len(v.Attrs) > 0 {
		dst = fmt.Appendf(dst, "|%d\r\n", len(v.Attrs)/2)
		for _, a := range v.Attrs {
			dst = encode(dst, a)
		}
	}
	line := func(t byte) []byte {
		dst = append(dst, t)
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	}
	switch v.Kind {
	case resp.SimpleString:
		return line('+')
	case resp.Error:
		if strings.ContainsAny(string(v.Str), "\r\n") {
			return fmt.Appendf(dst, "!%d\r\n%s\r\n", len(v.Str), v.Str)
		}
		return line('-')
	case resp.Integer:
		return line(':')
	case resp.Double:
		return line(',')
	case resp.Boolean:
		return line('#')
	case resp.BigNumber:
		return line('(')
	case resp.Null:
		return append(dst, "_\r\n"...)
	case resp.BulkString:
		return fmt.Appendf(dst, "$%d\r\n%s\r\n", len(v.Str), v.Str)
	case resp.VerbatimString:
		return fmt.Appendf(dst, "=%d\r\n%s:%s\r\n", len(v.Str)+4, v.Format[:], v.Str)
	}
	t := map[resp.Kind]byte{resp.Array: '*', resp.Set: '~', resp.Push: '>', resp.Map: '%'}[v.Kind]
	n := len(v.Elems)
	if v.Kind == resp.Map {
		n /= 2
	}
	dst = fmt.Appendf(dst, "%c%d\r\n", t, n)
	for _, e := range v.Elems {
		dst = encode(dst, e)
	}
	return dst
}

// result is what a reader produced for a whole stream: the replies (cloned),
// the final error, if any, and, without an error, the bytes left buffered.
type result struct {
	vals     []resp.Value
	err      error
	buffered int
}

func (r result) String() string {
	var b strings.Builder
	for _, v := range r.vals {
		fmt.Fprintf(&b, "%s %v; ", v.Kind, v)
	}
	fmt.Fprintf(&b, "err=%v buffered=%d", r.err, r.buffered)
	return b.String()
}

// run feeds the chunks to a new reader with limits l, draining every reply
// after each Feed.
func run(l resp.Limits, chunks [][]byte) result {
	r := resp.NewReader(l)
	var res result
	for _, c := range chunks {
		r.Feed(c)
		for {
			v, ok, err := r.Next()
			if err != nil {
				// Buffered depends on how much was fed before the error:
				// not part of the result.
				res.err = err
				return res
			}
			if !ok {
				break
			}
			res.vals = append(res.vals, v.Clone())
		}
	}
	res.buffered = r.Buffered()
	return res
}

// sameResult reports whether two runs gave the same replies and the same
// error text.
func sameResult(a, b result) bool {
	if len(a.vals) != len(b.vals) || a.buffered != b.buffered {
		return false
	}
	for i := range a.vals {
		if !resp.Equal(a.vals[i], b.vals[i]) {
			return false
		}
	}
	if (a.err == nil) != (b.err == nil) {
		return false
	}
	return a.err == nil || a.err.Error() == b.err.Error()
}

// whole, bytewise and randomChunks split data for run.
func whole(data []byte) [][]byte { return [][]byte{data} }

func bytewise(data []byte) [][]byte {
	out := make([][]byte, len(data))
	for i := range data {
		out[i] = data[i : i+1]
	}
	return out
}

func randomChunks(rng *rand.Rand, data []byte, maxChunk int) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := min(1+rng.IntN(maxChunk), len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// cutChunks splits data at the sizes given by cuts (each byte + 1), cycling
// through cuts; the fuzz target uses it.
func cutChunks(data, cuts []byte) [][]byte {
	if len(cuts) == 0 {
		return whole(data)
	}
	var out [][]byte
	for i := 0; len(data) > 0; i++ {
		n := min(int(cuts[i%len(cuts)])+1, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// randValue returns a random reply of any kind, nested at most depth levels.
func randValue(rng *rand.Rand, depth int) resp.Value {
	str := func() []byte {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	text := func() []byte { // no CR or LF: fits a line
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return b
	}
	k := rng.IntN(14)
	if depth <= 0 && k >= 9 {
		k = rng.IntN(9)
	}
	var v resp.Value
	switch k {
	case 0:
		v = resp.Value{Kind: resp.SimpleString, Str: text()}
	case 1:
		v = resp.Value{Kind: resp.Error, Str: text()}
		if rng.IntN(2) == 0 {
			v.Str = str() // sent as a blob error
		}
	case 2:
		n := rng.Int64() - rng.Int64()
		v = intv(n)
	case 3:
		v = resp.Value{Kind: resp.BulkString, Str: str()}
	case 4:
		v = null()
	case 5:
		f := []float64{math.Inf(1), math.Inf(-1), math.NaN(), rng.NormFloat64() * 1e6, 0}[rng.IntN(5)]
		v = dbl(strconv.FormatFloat(f, 'g', -1, 64), f)
	case 6:
		v = boolean(rng.IntN(2) == 0)
	case 7:
		v = big("-" + strings.Repeat("9", 1+rng.IntN(60)))
	case 8:
		v = verb("txt", string(str()))
	default:
		kind := []resp.Kind{resp.Array, resp.Map, resp.Set, resp.Push, resp.Array}[k-9]
		n := rng.IntN(5)
		if kind == resp.Map {
			n *= 2
		}
		var elems []resp.Value
		for range n {
			elems = append(elems, randValue(rng, depth-1))
		}
		v = agg(kind, elems...)
	}
	if rng.IntN(20) == 0 {
		v.Attrs = []resp.Value{simple("key"), randValue(rng, 0)}
	}
	return v
}
