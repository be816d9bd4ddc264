package resp_test

import (
	"math"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/internal/resp"
)

func TestAppendCommandGolden(t *testing.T) {
	got := string(resp.AppendCommand([]byte("prefix:"), "SET", "k", ""))
	if want := "prefix:*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := string(resp.AppendCommand(nil)); got != "*0\r\n" {
		t.Fatalf("no args: %q", got)
	}
	brpop := resp.AppendArrayHeader(nil, 4)
	brpop = resp.AppendBulkString(brpop, "BRPOP")
	brpop = resp.AppendBulk(brpop, []byte("qa"))
	brpop = resp.AppendBulkString(brpop, "qa\x06\x163")
	brpop = resp.AppendBulkInt(brpop, 1)
	if want := "*4\r\n$5\r\nBRPOP\r\n$2\r\nqa\r\n$5\r\nqa\x06\x163\r\n$1\r\n1\r\n"; string(brpop) != want {
		t.Fatalf("got %q, want %q", brpop, want)
	}
	for n, want := range map[int64]string{0: "$1\r\n0\r\n", -42: "$3\r\n-42\r\n",
		math.MinInt64: "$20\r\n-9223372036854775808\r\n"} {
		if got := string(resp.AppendBulkInt(nil, n)); got != want {
			t.Errorf("AppendBulkInt(%d) = %q, want %q", n, got, want)
		}
	}
	if got := string(resp.AppendArrayHeader(nil, -5)); got != "*-1\r\n" {
		t.Errorf("negative header %q", got)
	}
}

// TestAppendCommandRoundTrip: what the writer produces, the reader parses
// back as an array of bulk strings.
func TestAppendCommandRoundTrip(t *testing.T) {
	cmds := [][]string{
		{"PING"},
		{"BRPOP", "qb", "qa", "qb\x06\x163", "qa\x06\x163", "1"},
		{"PSUBSCRIBE", "/2.fx/ignored.*"},
		{"SET", "bin\r\n\x00", "", strings.Repeat("v", 100000)},
		{"LMPOP", "2", "q1", "q2", "RIGHT", "COUNT", "10"},
	}
	for _, cmd := range cmds {
		s := resp.AppendCommand(nil, cmd...)
		bargs := make([][]byte, len(cmd))
		for i, a := range cmd {
			bargs[i] = []byte(a)
		}
		b := resp.AppendCommandBytes(nil, bargs...)
		if string(s) != string(b) {
			t.Fatalf("AppendCommand and AppendCommandBytes differ for %q", cmd[0])
		}
		var want []resp.Value
		for _, a := range cmd {
			want = append(want, bulk(a))
		}
		got := run(resp.Limits{}, bytewise(s))
		checkCase(t, readerCase{want: []resp.Value{arr(want...)}}, got, cmd[0])
	}
}

// TestAppendCommandSizing: the buffer is grown once, to the computed size.
func TestAppendCommandSizing(t *testing.T) {
	for _, n := range []int{0, 1, 9, 10, 99, 100, 999, 1000, 12345, math.MaxInt32} {
		if got, want := resp.HeaderLen(n), len(resp.AppendArrayHeader(nil, n)); got != want {
			t.Errorf("headerLen(%d) = %d, want %d", n, got, want)
		}
	}
	if raceEnabled {
		return
	}
	for _, n := range []int{0, 1, 9, 10, 99, 100, 999, 1000, 12345} {
		arg := strings.Repeat("a", n)
		args := make([]string, n%13+1)
		for i := range args {
			args[i] = arg
		}
		if a := testing.AllocsPerRun(10, func() { _ = resp.AppendCommand(nil, args...) }); a != 1 {
			t.Errorf("AppendCommand(nil) with %d args of %d bytes: %v allocations, want 1", len(args), n, a)
		}
	}
	buf := make([]byte, 0, 256)
	if a := testing.AllocsPerRun(100, func() {
		buf = resp.AppendCommand(buf[:0], "BRPOP", "qb", "qa", "qb\x06\x163", "1")
	}); a != 0 {
		t.Errorf("AppendCommand into a large enough buffer: %v allocations", a)
	}
}
