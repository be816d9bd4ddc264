package resp_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/internal/resp"
)

type readerCase struct {
	name string
	in   string
	want []resp.Value // replies before the error, if any
	err  error        // nil, resp.ErrProtocol or resp.ErrTooLarge
}

var brpopReply = "*2\r\n" + bs("celery") + bs(`{"body": "aGk=", "headers": {}}`)

// validCases cover every type in RESP2 and RESP3, and the replies the Redis
// transport reads.
var validCases = []readerCase{
	// RESP2
	{name: "ok", in: "+OK\r\n", want: []resp.Value{simple("OK")}},
	{name: "pong", in: "+PONG\r\n", want: []resp.Value{simple("PONG")}},
	{name: "empty simple", in: "+\r\n", want: []resp.Value{simple("")}},
	{name: "simple with lone CR", in: "+a\rb\r\n", want: []resp.Value{simple("a\rb")}},
	{name: "error", in: "-ERR unknown command 'FOO'\r\n", want: []resp.Value{errv("ERR unknown command 'FOO'")}},
	{name: "wrongtype", in: "-WRONGTYPE Operation against a key\r\n", want: []resp.Value{errv("WRONGTYPE Operation against a key")}},
	{name: "zero", in: ":0\r\n", want: []resp.Value{intv(0)}},
	{name: "negative", in: ":-1\r\n", want: []resp.Value{intv(-1)}},
	{name: "plus sign", in: ":+7\r\n", want: []resp.Value{intText("+7", 7)}},
	{name: "max int64", in: ":9223372036854775807\r\n", want: []resp.Value{intv(math.MaxInt64)}},
	{name: "min int64", in: ":-9223372036854775808\r\n", want: []resp.Value{intv(math.MinInt64)}},
	{name: "bulk", in: "$5\r\nhello\r\n", want: []resp.Value{bulk("hello")}},
	{name: "empty bulk", in: "$0\r\n\r\n", want: []resp.Value{bulk("")}},
	{name: "binary bulk", in: "$6\r\n\r\n\x00\r\n\xff\r\n", want: []resp.Value{bulk("\r\n\x00\r\n\xff")}},
	{name: "null bulk", in: "$-1\r\n", want: []resp.Value{null()}},
	{name: "null array", in: "*-1\r\n", want: []resp.Value{null()}},
	{name: "empty array", in: "*0\r\n", want: []resp.Value{arr()}},
	{name: "brpop", in: brpopReply, want: []resp.Value{arr(bulk("celery"), bulk(`{"body": "aGk=", "headers": {}}`))}},
	{name: "nested", in: "*3\r\n*1\r\n:1\r\n*2\r\n+a\r\n$-1\r\n*0\r\n",
		want: []resp.Value{arr(arr(intv(1)), arr(simple("a"), null()), arr())}},
	{name: "message", in: "*3\r\n" + bs("message") + bs("/0.fx") + bs("hi"),
		want: []resp.Value{arr(bulk("message"), bulk("/0.fx"), bulk("hi"))}},
	{name: "pmessage", in: "*4\r\n" + bs("pmessage") + bs("/0.fx/*") + bs("/0.fx/k.1") + bs(`{"x":1}`),
		want: []resp.Value{arr(bulk("pmessage"), bulk("/0.fx/*"), bulk("/0.fx/k.1"), bulk(`{"x":1}`))}},
	{name: "psubscribe", in: "*3\r\n" + bs("psubscribe") + bs("/0.fx*") + ":1\r\n",
		want: []resp.Value{arr(bulk("psubscribe"), bulk("/0.fx*"), intv(1))}},
	{name: "subscribe", in: "*3\r\n" + bs("subscribe") + bs("ch") + ":2\r\n",
		want: []resp.Value{arr(bulk("subscribe"), bulk("ch"), intv(2))}},
	{name: "lmpop", in: "*2\r\n" + bs("q") + "*2\r\n" + bs("v1") + bs("v2"),
		want: []resp.Value{arr(bulk("q"), arr(bulk("v1"), bulk("v2")))}},
	{name: "several", in: "+OK\r\n:3\r\n" + brpopReply + "*-1\r\n-ERR x\r\n",
		want: []resp.Value{simple("OK"), intv(3), arr(bulk("celery"), bulk(`{"body": "aGk=", "headers": {}}`)), null(), errv("ERR x")}},
	{name: "deep within limit", in: strings.Repeat("*1\r\n", resp.DefaultMaxDepth-1) + ":1\r\n",
		want: []resp.Value{nest(resp.DefaultMaxDepth-1, intv(1))}},

	// RESP3
	{name: "null3", in: "_\r\n", want: []resp.Value{null()}},
	{name: "double", in: ",3.14\r\n", want: []resp.Value{dbl("3.14", 3.14)}},
	{name: "double integer", in: ",10\r\n", want: []resp.Value{dbl("10", 10)}},
	{name: "double exp", in: ",-1.5e10\r\n", want: []resp.Value{dbl("-1.5e10", -1.5e10)}},
	{name: "inf", in: ",inf\r\n", want: []resp.Value{dbl("inf", math.Inf(1))}},
	{name: "-inf", in: ",-inf\r\n", want: []resp.Value{dbl("-inf", math.Inf(-1))}},
	{name: "nan", in: ",nan\r\n", want: []resp.Value{dbl("nan", math.NaN())}},
	{name: "true", in: "#t\r\n", want: []resp.Value{boolean(true)}},
	{name: "false", in: "#f\r\n", want: []resp.Value{boolean(false)}},
	{name: "big number", in: "(3492890328409238509324850943850943825024385\r\n",
		want: []resp.Value{big("3492890328409238509324850943850943825024385")}},
	{name: "negative big number", in: "(-12\r\n", want: []resp.Value{big("-12")}},
	{name: "verbatim", in: "=15\r\ntxt:Some string\r\n", want: []resp.Value{verb("txt", "Some string")}},
	{name: "empty verbatim", in: "=4\r\nmkd:\r\n", want: []resp.Value{verb("mkd", "")}},
	{name: "blob error", in: "!21\r\nSYNTAX invalid syntax\r\n", want: []resp.Value{errv("SYNTAX invalid syntax")}},
	{name: "hello map", in: "%7\r\n+server\r\n+redis\r\n+version\r\n+7.2.4\r\n+proto\r\n:3\r\n+id\r\n:5\r\n" +
		"+mode\r\n+standalone\r\n+role\r\n+master\r\n+modules\r\n*0\r\n",
		want: []resp.Value{mapv(simple("server"), simple("redis"), simple("version"), simple("7.2.4"),
			simple("proto"), intv(3), simple("id"), intv(5), simple("mode"), simple("standalone"),
			simple("role"), simple("master"), simple("modules"), arr())}},
	{name: "empty map", in: "%0\r\n", want: []resp.Value{mapv()}},
	{name: "set", in: "~3\r\n:1\r\n:2\r\n:3\r\n", want: []resp.Value{set(intv(1), intv(2), intv(3))}},
	{name: "push message", in: ">3\r\n" + bs("message") + bs("/0.x") + bs("hi"),
		want: []resp.Value{push(bulk("message"), bulk("/0.x"), bulk("hi"))}},
	{name: "push pmessage", in: ">4\r\n" + bs("pmessage") + bs("/0.x*") + bs("/0.x.y") + bs("hi"),
		want: []resp.Value{push(bulk("pmessage"), bulk("/0.x*"), bulk("/0.x.y"), bulk("hi"))}},
	{name: "push psubscribe", in: ">3\r\n" + bs("psubscribe") + bs("/0.x*") + ":1\r\n",
		want: []resp.Value{push(bulk("psubscribe"), bulk("/0.x*"), intv(1))}},
	{name: "brpop timeout resp3", in: "_\r\n" + brpopReply,
		want: []resp.Value{null(), arr(bulk("celery"), bulk(`{"body": "aGk=", "headers": {}}`))}},
	{name: "attribute", in: "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n" +
		"*2\r\n:2039123\r\n:9543892\r\n",
		want: []resp.Value{withAttrs(arr(intv(2039123), intv(9543892)),
			simple("key-popularity"), mapv(bulk("a"), dbl("0.1923", 0.1923), bulk("b"), dbl("0.0012", 0.0012)))}},
	{name: "attribute in array", in: "*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nx\r\n:2\r\n",
		want: []resp.Value{arr(withAttrs(bulk("x"), simple("ttl"), intv(3600)), intv(2))}},
	{name: "attributes merged", in: "|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n+OK\r\n",
		want: []resp.Value{withAttrs(simple("OK"), simple("a"), intv(1), simple("b"), intv(2))}},
	{name: "empty attribute", in: "|0\r\n:1\r\n", want: []resp.Value{intv(1)}},
	{name: "attribute after last element", in: "*1\r\n:1\r\n|1\r\n+a\r\n+b\r\n:2\r\n",
		want: []resp.Value{arr(intv(1)), withAttrs(intv(2), simple("a"), simple("b"))}},
	{name: "attribute on aggregate and child", in: "|1\r\n+outer\r\n:1\r\n*1\r\n|1\r\n+inner\r\n:2\r\n+x\r\n",
		want: []resp.Value{withAttrs(arr(withAttrs(simple("x"), simple("inner"), intv(2))), simple("outer"), intv(1))}},
	{name: "nested attribute", in: "|1\r\n*1\r\n|1\r\n+k\r\n+v\r\n+a\r\n+b\r\n:7\r\n",
		want: []resp.Value{withAttrs(intv(7), arr(withAttrs(simple("a"), simple("k"), simple("v"))), simple("b"))}},
}

// nest wraps v in n one-element arrays.
func nest(n int, v resp.Value) resp.Value {
	for range n {
		v = arr(v)
	}
	return v
}

// malformedCases must end in an error: never a panic or a hang.
var malformedCases = []readerCase{
	{name: "unknown type byte", in: "?\r\n", err: resp.ErrProtocol},
	{name: "CRLF as type", in: "\r\n", err: resp.ErrProtocol},
	{name: "NUL type byte", in: "\x00", err: resp.ErrProtocol},
	{name: "stream chunk type", in: ";4\r\nHell\r\n", err: resp.ErrProtocol},
	{name: "stream end type", in: ".\r\n", err: resp.ErrProtocol},
	{name: "LF without CR", in: "+OK\n", err: resp.ErrProtocol},
	{name: "LF right after type", in: "+\n", err: resp.ErrProtocol},
	{name: "header without CR", in: "$5\nhello\r\n", err: resp.ErrProtocol},
	{name: "bulk not followed by CRLF", in: "$5\r\nhelloXY", err: resp.ErrProtocol},
	{name: "bulk followed by LF only", in: "$5\r\nhello\nX", err: resp.ErrProtocol},
	{name: "bulk too short", in: "$5\r\nhel\r\n:1\r\n", err: resp.ErrProtocol},
	{name: "negative bulk length", in: "$-2\r\n", err: resp.ErrProtocol},
	{name: "negative array length", in: "*-2\r\n", err: resp.ErrProtocol},
	{name: "minus zero", in: "$-0\r\n", err: resp.ErrProtocol},
	{name: "null map", in: "%-1\r\n", err: resp.ErrProtocol},
	{name: "null set", in: "~-1\r\n", err: resp.ErrProtocol},
	{name: "null push", in: ">-1\r\n", err: resp.ErrProtocol},
	{name: "null blob error", in: "!-1\r\n", err: resp.ErrProtocol},
	{name: "null verbatim", in: "=-1\r\n", err: resp.ErrProtocol},
	{name: "bad length", in: "$abc\r\n", err: resp.ErrProtocol},
	{name: "signed length", in: "*+1\r\n:1\r\n", err: resp.ErrProtocol},
	{name: "empty length", in: "$\r\n", err: resp.ErrProtocol},
	{name: "spaced length", in: "* 1\r\n", err: resp.ErrProtocol},
	{name: "streamed string", in: "$?\r\n;4\r\nHell\r\n;0\r\n", err: resp.ErrProtocol},
	{name: "streamed array", in: "*?\r\n:1\r\n.\r\n", err: resp.ErrProtocol},
	{name: "bad integer", in: ":abc\r\n", err: resp.ErrProtocol},
	{name: "empty integer", in: ":\r\n", err: resp.ErrProtocol},
	{name: "sign only", in: ":-\r\n", err: resp.ErrProtocol},
	{name: "integer overflow", in: ":9223372036854775808\r\n", err: resp.ErrProtocol},
	{name: "integer underflow", in: ":-9223372036854775809\r\n", err: resp.ErrProtocol},
	{name: "long integer", in: ":123456789012345678901234567890\r\n", err: resp.ErrProtocol},
	{name: "trailing minus", in: ":1-\r\n", err: resp.ErrProtocol},
	{name: "bad double", in: ",abc\r\n", err: resp.ErrProtocol},
	{name: "empty double", in: ",\r\n", err: resp.ErrProtocol},
	{name: "bad boolean", in: "#x\r\n", err: resp.ErrProtocol},
	{name: "empty boolean", in: "#\r\n", err: resp.ErrProtocol},
	{name: "long boolean", in: "#tt\r\n", err: resp.ErrProtocol},
	{name: "empty big number", in: "(\r\n", err: resp.ErrProtocol},
	{name: "bad big number", in: "(12a\r\n", err: resp.ErrProtocol},
	{name: "null with content", in: "_x\r\n", err: resp.ErrProtocol},
	{name: "short verbatim", in: "=3\r\ntxt\r\n", err: resp.ErrProtocol},
	{name: "verbatim without colon", in: "=5\r\ntxt-x\r\n", err: resp.ErrProtocol},
	{name: "error inside array", in: "*2\r\n:1\r\n?\r\n", err: resp.ErrProtocol},
	{name: "error after a reply", in: "+OK\r\n?", want: []resp.Value{simple("OK")}, err: resp.ErrProtocol},
	{name: "huge bulk", in: "$999999999999\r\n", err: resp.ErrTooLarge},
	{name: "bulk over default limit", in: "$536870913\r\n", err: resp.ErrTooLarge},
	{name: "absurd bulk", in: "$99999999999999999999999999999999999999\r\n", err: resp.ErrTooLarge},
	{name: "huge array", in: "*99999999999\r\n", err: resp.ErrTooLarge},
	{name: "array over default limit", in: "*1048577\r\n", err: resp.ErrTooLarge},
	{name: "map over default limit", in: "%524289\r\n", err: resp.ErrTooLarge},
	{name: "absurd map", in: "%99999999999999999999999999999999999999\r\n", err: resp.ErrTooLarge},
	{name: "attribute over default limit", in: "|524289\r\n", err: resp.ErrTooLarge},
	{name: "too deep", in: strings.Repeat("*1\r\n", resp.DefaultMaxDepth+1) + ":1\r\n", err: resp.ErrTooLarge},
	{name: "too deep with empty", in: strings.Repeat("*1\r\n", resp.DefaultMaxDepth) + "*0\r\n", err: resp.ErrTooLarge},
	{name: "too deep attributes", in: strings.Repeat("|1\r\n", resp.DefaultMaxDepth+1), err: resp.ErrTooLarge},
	{name: "long line", in: "+" + strings.Repeat("a", resp.DefaultMaxLine+1) + "\r\n", err: resp.ErrTooLarge},
	{name: "endless line", in: "-" + strings.Repeat("a", resp.DefaultMaxLine+2), err: resp.ErrTooLarge},
	{name: "long header", in: "$" + strings.Repeat("0", resp.DefaultMaxLine+5) + "\r\n", err: resp.ErrTooLarge},
}

func allCases() []readerCase { return append(append([]readerCase{}, validCases...), malformedCases...) }

func checkCase(t *testing.T, tc readerCase, got result, how string) {
	t.Helper()
	if len(got.vals) != len(tc.want) {
		t.Fatalf("%s: got %d replies, want %d: %v", how, len(got.vals), len(tc.want), got)
	}
	for i := range tc.want {
		if !resp.Equal(got.vals[i], tc.want[i]) {
			t.Errorf("%s: reply %d = %s %v (attrs %v), want %s %v (attrs %v)", how, i,
				got.vals[i].Kind, got.vals[i], got.vals[i].Attrs, tc.want[i].Kind, tc.want[i], tc.want[i].Attrs)
		}
	}
	if tc.err == nil && got.err != nil {
		t.Fatalf("%s: unexpected error %v", how, got.err)
	}
	if tc.err != nil && !errors.Is(got.err, tc.err) {
		t.Fatalf("%s: error = %v, want %v", how, got.err, tc.err)
	}
	if tc.err == nil && got.buffered != 0 {
		t.Errorf("%s: Buffered() = %d after the last reply, want 0", how, got.buffered)
	}
}

func TestReaderTable(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, tc, run(resp.Limits{}, whole([]byte(tc.in))), "whole")
		})
	}
}

// TestReaderAnySplit: any split of the input gives the result of feeding it
// whole, errors included.
func TestReaderAnySplit(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			ref := run(resp.Limits{}, whole(in))
			checkCase(t, tc, ref, "whole")
			got := run(resp.Limits{}, bytewise(in))
			checkCase(t, tc, got, "bytewise")
			if !sameResult(ref, got) {
				t.Fatalf("bytewise: %v\nwhole: %v", got, ref)
			}
			// Every split in two.
			for i := 1; i < len(in) && i < 600; i++ {
				got := run(resp.Limits{}, [][]byte{in[:i], in[i:]})
				if !sameResult(ref, got) {
					t.Fatalf("split at %d: %v\nwhole: %v", i, got, ref)
				}
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(in))))
			for range 20 {
				got := run(resp.Limits{}, randomChunks(rng, in, 1+rng.IntN(64)))
				if !sameResult(ref, got) {
					t.Fatalf("random chunks: %v\nwhole: %v", got, ref)
				}
			}
		})
	}
}

// TestReaderStream feeds all valid cases as one stream, in random chunks.
func TestReaderStream(t *testing.T) {
	var in []byte
	var want []resp.Value
	for _, tc := range validCases {
		in = append(in, tc.in...)
		want = append(want, tc.want...)
	}
	tc := readerCase{want: want}
	checkCase(t, tc, run(resp.Limits{}, whole(in)), "whole")
	checkCase(t, tc, run(resp.Limits{}, bytewise(in)), "bytewise")
	rng := rand.New(rand.NewPCG(2, 3))
	for _, maxChunk := range []int{2, 7, 100, 4096, 100000} {
		checkCase(t, tc, run(resp.Limits{}, randomChunks(rng, in, maxChunk)), "random")
	}
}

// TestReaderRandomRoundTrip encodes random replies of every kind and parses
// them back in random chunks.
func TestReaderRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	for round := range 50 {
		var in []byte
		var want []resp.Value
		for range 100 {
			v := randValue(rng, 4)
			want = append(want, v)
			in = encode(in, v)
		}
		tc := readerCase{want: want}
		checkCase(t, tc, run(resp.Limits{}, whole(in)), "whole")
		checkCase(t, tc, run(resp.Limits{}, randomChunks(rng, in, 1+round*50)), "random")
	}
}

func TestReaderLimits(t *testing.T) {
	cases := []struct {
		lim resp.Limits
		in  string
		err error
	}{
		{resp.Limits{MaxBulk: 4}, "$4\r\nhell\r\n", nil},
		{resp.Limits{MaxBulk: 4}, "$5\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxBulk: 4}, "!5\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxBulk: 4}, "=8\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxBulk: 4}, "+a much longer simple string is not a bulk\r\n", nil},
		{resp.Limits{MaxElems: 2}, "*2\r\n:1\r\n:2\r\n", nil},
		{resp.Limits{MaxElems: 2}, "*3\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxElems: 2}, "~3\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxElems: 2}, ">3\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxElems: 2}, "%1\r\n:1\r\n:2\r\n", nil},
		{resp.Limits{MaxElems: 2}, "%2\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxElems: 2}, "|2\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxDepth: 1}, "*1\r\n:1\r\n", nil},
		{resp.Limits{MaxDepth: 1}, "*1\r\n*0\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxDepth: 1}, "*1\r\n*-1\r\n", nil}, // a null is not an aggregate
		{resp.Limits{MaxDepth: 1}, "|1\r\n+a\r\n+b\r\n*1\r\n:1\r\n", nil},
		{resp.Limits{MaxDepth: 1}, "*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxLine: 4}, "+abcd\r\n", nil},
		{resp.Limits{MaxLine: 4}, "+abcde\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxLine: 4}, "-abcdef", resp.ErrTooLarge},
		{resp.Limits{MaxLine: 4}, "$12345\r\n", resp.ErrTooLarge},
		{resp.Limits{MaxLine: 4}, "$5\r\nab\ncd\r\n", nil},                                              // a payload is no line
		{resp.Limits{MaxBulk: -1, MaxElems: -1, MaxDepth: -1, MaxLine: -1}, "*1\r\n$3\r\nabc\r\n", nil}, // defaults
	}
	for _, tc := range cases {
		got := run(tc.lim, whole([]byte(tc.in)))
		if tc.err == nil && (got.err != nil || len(got.vals) != 1) {
			t.Errorf("%+v %q: got %v, want one reply", tc.lim, tc.in, got)
		}
		if tc.err != nil && !errors.Is(got.err, tc.err) {
			t.Errorf("%+v %q: got %v, want %v", tc.lim, tc.in, got, tc.err)
		}
	}
}

func TestReaderErrorIsSticky(t *testing.T) {
	var r resp.Reader
	r.Feed([]byte("+OK\r\n$x\r\n+PONG\r\n"))
	if v, ok, err := r.Next(); !ok || err != nil || v.String() != "OK" {
		t.Fatalf("first reply: %v %v %v", v, ok, err)
	}
	_, ok, err := r.Next()
	if ok || !errors.Is(err, resp.ErrProtocol) {
		t.Fatalf("second reply: ok=%v err=%v, want a protocol error", ok, err)
	}
	if want := `resp: protocol error: bad length "x" at offset 5`; err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	r.Feed([]byte("+OK\r\n"))
	if _, ok, err2 := r.Next(); ok || err2 != err {
		t.Fatalf("after the error: ok=%v err=%v, want the same error", ok, err2)
	}
	r.Reset()
	if r.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after Reset", r.Buffered())
	}
	r.Feed([]byte("+OK\r\n"))
	if v, ok, err := r.Next(); !ok || err != nil || v.String() != "OK" {
		t.Fatalf("after Reset: %v %v %v", v, ok, err)
	}
}

func TestReaderErrorOffset(t *testing.T) {
	in := "+OK\r\n*2\r\n:1\r\n#x\r\n"
	for _, chunks := range [][][]byte{whole([]byte(in)), bytewise([]byte(in))} {
		got := run(resp.Limits{}, chunks)
		if got.err == nil || !strings.HasSuffix(got.err.Error(), "at offset 13") {
			t.Errorf("error %v, want one at offset 13", got.err)
		}
	}
}

func TestReaderResumesPartialReply(t *testing.T) {
	var r resp.Reader
	in := []byte(brpopReply)
	for i := range in[:len(in)-1] {
		r.Feed(in[i : i+1])
		if _, ok, err := r.Next(); ok || err != nil {
			t.Fatalf("byte %d: ok=%v err=%v before the reply is complete", i, ok, err)
		}
		if r.Buffered() != i+1 {
			t.Fatalf("byte %d: Buffered() = %d, want %d", i, r.Buffered(), i+1)
		}
	}
	r.Feed(in[len(in)-1:])
	v, ok, err := r.Next()
	if !ok || err != nil || len(v.Array()) != 2 || v.Elems[0].String() != "celery" {
		t.Fatalf("got %v %v %v", v, ok, err)
	}
	if _, ok, err := r.Next(); ok || err != nil {
		t.Fatalf("extra Next: ok=%v err=%v", ok, err)
	}
}

// TestReaderPartialSurvivesRealloc: strings parsed before the buffer moves
// to a new array stay intact.
func TestReaderPartialSurvivesRealloc(t *testing.T) {
	body := strings.Repeat("0123456789", 10000)
	in := []byte("*3\r\n" + bs("key") + bs("second") + bs(body))
	var r resp.Reader
	r.Feed(in[:40]) // both short strings and part of the body header
	if _, ok, err := r.Next(); ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	before := r.BufCap()
	for i := 40; i < len(in); i += 5000 {
		r.Feed(in[i:min(i+5000, len(in))])
	}
	if r.BufCap() == before {
		t.Fatalf("the buffer did not move (cap %d); the test does not test anything", before)
	}
	v, ok, err := r.Next()
	if !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	want := arr(bulk("key"), bulk("second"), bulk(body))
	if !resp.Equal(v, want) {
		t.Fatalf("got %.80v", v)
	}
}

// TestReaderHugeDeclaredLength: a declared size within the limits allocates
// only as the bytes arrive.
func TestReaderHugeDeclaredLength(t *testing.T) {
	var r resp.Reader
	r.Feed([]byte("$536870912\r\n")) // exactly DefaultMaxBulk: accepted
	r.Feed(make([]byte, 1000))
	if _, ok, err := r.Next(); ok || err != nil {
		t.Fatalf("ok=%v err=%v, want a pending reply", ok, err)
	}
	if c := r.BufCap(); c > 64<<10 {
		t.Fatalf("buffer capacity %d after 1 KiB of a 512 MiB bulk string", c)
	}

	r.Reset()
	r.Feed([]byte("*1048576\r\n" + strings.Repeat(":1\r\n", 100)))
	if _, ok, err := r.Next(); ok || err != nil {
		t.Fatalf("ok=%v err=%v, want a pending reply", ok, err)
	}
	if vals, arena := r.ScratchCap(); vals > 1024 || arena > 1024 {
		t.Fatalf("scratch capacities %d/%d after 100 elements of a 1 Mi array", vals, arena)
	}
}

// TestReaderProgressiveBulk: a large bulk string fed in 64 KiB reads is
// buffered with amortised growth, not declared-size allocation.
func TestReaderProgressiveBulk(t *testing.T) {
	const size = 4 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i)
	}
	in := append([]byte("$4194304\r\n"), body...)
	in = append(in, "\r\n+OK\r\n"...)
	var r resp.Reader
	for i := 0; i < len(in); i += 64 << 10 {
		end := min(i+64<<10, len(in))
		r.Feed(in[i:end])
		if c := r.BufCap(); c > 2*end+resp.MinBuf {
			t.Fatalf("after %d bytes the buffer capacity is %d", end, c)
		}
		if end < len(in)-7 {
			if _, ok, err := r.Next(); ok || err != nil {
				t.Fatalf("at %d: ok=%v err=%v", end, ok, err)
			}
		}
	}
	v, ok, err := r.Next()
	if !ok || err != nil || !resp.Equal(v, resp.Value{Kind: resp.BulkString, Str: body}) {
		t.Fatalf("ok=%v err=%v len=%d", ok, err, len(v.Str))
	}
	if v, ok, _ := r.Next(); !ok || v.String() != "OK" {
		t.Fatalf("second reply %v %v", v, ok)
	}
	// Idle again: the big buffer is released on the next Feed.
	r.Feed([]byte("+PONG\r\n"))
	if c := r.BufCap(); c > resp.RetainBuf {
		t.Fatalf("buffer capacity %d kept after the big reply", c)
	}
}

// TestReaderBufferCompaction: a long run of replies fed in reads that split
// them keeps a small buffer.
func TestReaderBufferCompaction(t *testing.T) {
	one := []byte("*2\r\n" + bs("queue") + bs(strings.Repeat("x", 300)))
	var in []byte
	for range 3000 {
		in = append(in, one...)
	}
	var r resp.Reader
	n := 0
	for i := 0; i < len(in); i += 1000 {
		r.Feed(in[i:min(i+1000, len(in))])
		for {
			v, ok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if len(v.Elems) != 2 || len(v.Elems[1].Str) != 300 {
				t.Fatalf("reply %d: %v", n, v)
			}
			n++
		}
		if c := r.BufCap(); c > 2*resp.MinBuf {
			t.Fatalf("after %d bytes the buffer capacity is %d", i, c)
		}
	}
	if n != 3000 {
		t.Fatalf("got %d replies, want 3000", n)
	}
}

func TestReaderZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	var r resp.Reader
	msg := []byte(brpopReply + ">4\r\n" + bs("pmessage") + bs("/0.x*") + bs("/0.x.y") + bs("hi"))
	r.Feed(msg) // warm up the buffers
	for {
		if _, ok, _ := r.Next(); !ok {
			break
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		r.Feed(msg)
		for {
			_, ok, err := r.Next()
			if err != nil {
				panic(err)
			}
			if !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per BRPOP + pmessage reply, want 0", allocs)
	}
}

// TestReaderValueValidUntilNext documents the lifetime rule: the next Next
// reuses the scratch space, and Clone keeps a reply.
func TestReaderValueValidUntilNext(t *testing.T) {
	var r resp.Reader
	r.Feed([]byte("*1\r\n:1\r\n*1\r\n:2\r\n"))
	v1, _, _ := r.Next()
	keep := v1.Clone()
	v2, _, _ := r.Next()
	if v2.Elems[0].Int != 2 || keep.Elems[0].Int != 1 {
		t.Fatalf("v2=%v keep=%v", v2, keep)
	}
	// v1 is stale: its element slot was reused for v2.
	if v1.Elems[0].Int != 2 {
		t.Fatalf("v1.Elems[0] = %v: the scratch space was not reused", v1.Elems[0])
	}
}

// TestReaderReleasesScratch: the element scratch space of one big reply is
// not kept for the next.
func TestReaderReleasesScratch(t *testing.T) {
	var r resp.Reader
	r.Feed([]byte("*10000\r\n" + strings.Repeat(":1\r\n", 10000)))
	if v, ok, err := r.Next(); !ok || err != nil || len(v.Elems) != 10000 {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	r.Feed([]byte("*1\r\n:1\r\n"))
	if _, ok, err := r.Next(); !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	if vals, arena := r.ScratchCap(); vals > 1024 || arena > 1024 {
		t.Fatalf("scratch capacities %d/%d kept after the big reply", vals, arena)
	}
	r.Feed([]byte("$2000000\r\n"))
	r.Feed(make([]byte, 2000000))
	r.Feed([]byte("\r\n"))
	if _, ok, err := r.Next(); !ok || err != nil {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	r.Reset()
	if c := r.BufCap(); c > resp.RetainBuf {
		t.Fatalf("Reset kept a buffer of %d bytes", c)
	}
}

func TestReaderErrorQuotesLittle(t *testing.T) {
	got := run(resp.Limits{}, whole([]byte(":"+strings.Repeat("x", 1000)+"\r\n")))
	want := `resp: protocol error: bad integer "` + strings.Repeat("x", 32) + `"... at offset 0`
	if got.err == nil || got.err.Error() != want {
		t.Fatalf("error %v, want %s", got.err, want)
	}
}
