package resp_test

import (
	"errors"
	"math"
	"testing"

	"github.com/kombu-go/kombu/internal/resp"
)

func TestKindString(t *testing.T) {
	for k, want := range map[resp.Kind]string{
		resp.Invalid: "Invalid", resp.BulkString: "BulkString", resp.Push: "Push",
		resp.VerbatimString: "VerbatimString", resp.Kind(200): "Kind(200)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestValueAccessors(t *testing.T) {
	if !null().IsNull() || bulk("").IsNull() || arr().IsNull() {
		t.Error("IsNull")
	}
	if !boolean(true).Bool() || boolean(false).Bool() || intv(1).Bool() {
		t.Error("Bool")
	}
	if string(bulk("ab").Bytes()) != "ab" || null().Bytes() != nil {
		t.Error("Bytes")
	}
	a := arr(intv(1), intv(2))
	if len(a.Array()) != 2 || len(set(intv(1)).Array()) != 1 || len(push(intv(1)).Array()) != 1 {
		t.Error("Array on Array/Set/Push")
	}
	if mapv(intv(1), intv(2)).Array() != nil || bulk("x").Array() != nil {
		t.Error("Array on Map/BulkString must be nil")
	}
}

func TestValueErr(t *testing.T) {
	if bulk("ERR x").Err() != nil {
		t.Fatal("Err on a bulk string")
	}
	err := errv("WRONGTYPE Operation against a key").Err()
	var re *resp.RedisError
	if !errors.As(err, &re) {
		t.Fatalf("Err() = %T, want *RedisError", err)
	}
	if re.Prefix() != "WRONGTYPE" || re.Msg != "WRONGTYPE Operation against a key" {
		t.Errorf("prefix %q msg %q", re.Prefix(), re.Msg)
	}
	if err.Error() != "resp: WRONGTYPE Operation against a key" {
		t.Errorf("Error() = %q", err.Error())
	}
	if p := (&resp.RedisError{Msg: "NOSCRIPT"}).Prefix(); p != "NOSCRIPT" {
		t.Errorf("one-word prefix %q", p)
	}
}

func TestValueLookup(t *testing.T) {
	hello := run(resp.Limits{}, whole([]byte("%3\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n$4\r\nmode\r\n+standalone\r\n"))).vals[0]
	if v, ok := hello.Lookup("proto"); !ok || v.Int != 3 {
		t.Errorf("proto = %v %v", v, ok)
	}
	if v, ok := hello.Lookup("mode"); !ok || v.String() != "standalone" {
		t.Errorf("mode = %v %v", v, ok)
	}
	if _, ok := hello.Lookup("redis"); ok {
		t.Error("a value was found as a key")
	}
	if _, ok := arr(simple("proto"), intv(3)).Lookup("proto"); ok {
		t.Error("Lookup on an array")
	}
}

func TestValueString(t *testing.T) {
	cases := []struct {
		v    resp.Value
		want string
	}{
		{bulk("hi"), "hi"},
		{intv(-5), "-5"},
		{dbl("inf", math.Inf(1)), "inf"},
		{null(), ""},
		{boolean(true), "t"},
		{verb("txt", "x"), "x"},
		{arr(bulk("q"), intv(1), null(), errv("ERR x"), boolean(false), arr()), `["q" 1 (nil) (error "ERR x") false []]`},
		{mapv(simple("a"), intv(1), simple("b"), set(intv(2))), `{"a": 1 "b": ~2~}`},
		{push(bulk("message")), `<"message">`},
		{arr(resp.Value{}), `[(invalid)]`},
	}
	for _, tc := range cases {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestValueClone(t *testing.T) {
	var r resp.Reader
	in := "|1\r\n+a\r\n+b\r\n*3\r\n$5\r\nhello\r\n%1\r\n+k\r\n*1\r\n:7\r\n=7\r\ntxt:abc\r\n"
	r.Feed([]byte(in))
	v, ok, err := r.Next()
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	c := v.Clone()
	if !resp.Equal(c, v) {
		t.Fatalf("clone %v differs from %v", c, v)
	}
	want := v.Clone()
	// Overwrite the reader's buffer and scratch with other data of the
	// same shape.
	r.Feed([]byte("|1\r\n+x\r\n+y\r\n*3\r\n$5\r\nworld\r\n%1\r\n+z\r\n*1\r\n:8\r\n=7\r\nmkd:xyz\r\n"))
	if _, ok, _ := r.Next(); !ok {
		t.Fatal("second reply")
	}
	if !resp.Equal(c, want) {
		t.Fatalf("clone changed after the reader moved on: %v", c)
	}
	if !raceEnabled {
		if n := testing.AllocsPerRun(100, func() { _ = c.Clone() }); n > 2 {
			t.Errorf("Clone made %v allocations, want at most 2", n)
		}
	}
	if s := bulk("").Clone(); s.Kind != resp.BulkString || len(s.Str) != 0 {
		t.Errorf("empty clone %v", s)
	}
}

func TestEqual(t *testing.T) {
	a := arr(bulk("x"), dbl("nan", math.NaN()))
	if !resp.Equal(a, a) {
		t.Error("NaN doubles must be equal")
	}
	diffs := []resp.Value{
		arr(bulk("y"), dbl("nan", math.NaN())),
		arr(bulk("x")),
		arr(bulk("x"), dbl("1", 1)),
		set(bulk("x"), dbl("nan", math.NaN())),
		withAttrs(a, simple("k"), simple("v")),
	}
	for _, d := range diffs {
		if resp.Equal(a, d) {
			t.Errorf("Equal(%v, %v)", a, d)
		}
	}
	if resp.Equal(verb("txt", "a"), verb("mkd", "a")) {
		t.Error("formats differ")
	}
}
