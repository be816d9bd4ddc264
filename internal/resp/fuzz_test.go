package resp_test

import (
	"errors"
	"testing"

	"github.com/kombu-go/kombu/internal/resp"
)

// FuzzReader: for arbitrary bytes split at fuzzer-chosen points, the reader
// never panics, gives the replies and error it gives for the whole input,
// and every reply it returns re-encodes to bytes that parse back to it.
func FuzzReader(f *testing.F) {
	for _, tc := range allCases() {
		if len(tc.in) > 1024 {
			continue // long inputs make slow seeds; the table tests run them
		}
		f.Add([]byte(tc.in), []byte{})
		f.Add([]byte(tc.in), []byte{0})
		f.Add([]byte(tc.in), []byte{2, 0, 7})
	}
	f.Add([]byte("*2\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), []byte{3, 11, 1})
	f.Add([]byte("$5\r\nhello\r\n$-1\r\n"), []byte{4})
	f.Add([]byte("|1\r\n+a\r\n|1\r\n+b\r\n+c\r\n*1\r\n:1\r\n"), []byte{1, 5})
	f.Add([]byte("%1\r\n*1\r\n~0\r\n>1\r\n_\r\n"), []byte{0, 1, 2})
	f.Add([]byte("+0123456789abcdef\r\n-0123456789"), []byte{5})
	f.Add([]byte("$0000000000016\r\n0123456789abcdef\r\n"), []byte{1})
	f.Add([]byte("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), []byte{1})
	f.Add([]byte("*7\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n"), []byte{3})

	// Small limits make the limit paths reachable with short inputs.
	limits := []resp.Limits{{}, {MaxBulk: 16, MaxElems: 6, MaxDepth: 3, MaxLine: 8}}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		for _, l := range limits {
			ref := run(l, whole(data))
			got := run(l, cutChunks(data, cuts))
			if !sameResult(ref, got) {
				t.Fatalf("limits %+v\nsplit: %v\nwhole: %v", l, got, ref)
			}
			if ref.err != nil && !errors.Is(ref.err, resp.ErrProtocol) && !errors.Is(ref.err, resp.ErrTooLarge) {
				t.Fatalf("error %v wraps no sentinel", ref.err)
			}
			if ref.buffered < 0 || ref.buffered > len(data) {
				t.Fatalf("Buffered() = %d for %d bytes", ref.buffered, len(data))
			}
			for _, v := range ref.vals {
				back := run(resp.Limits{}, whole(encode(nil, v)))
				if back.err != nil || len(back.vals) != 1 || !resp.Equal(back.vals[0], v) {
					t.Fatalf("%s %v does not round-trip: %v", v.Kind, v, back)
				}
			}
		}
	})
}
