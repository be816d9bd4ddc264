package compression_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"testing"

	"github.com/kombu-go/kombu/messaging/compression"
)

// issueBomb is the bomb of issue 10: 300 MiB of zeros through zlib at
// level 9, about 305 KB.
func issueBomb(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 300 {
		zw.Write(zeros)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkBombRefused times the refusal of the issue's bomb at three
// limits: "registry" is Registry.Decompress (which only counts past 32
// times the input), "grow" reads the same stream with ReadLimited, the
// single growing buffer every codec used before. Compare them in one run:
//
//	go test -run XXX -bench BombRefused -benchmem ./messaging/compression/
func BenchmarkBombRefused(b *testing.B) {
	bomb := issueBomb(b)
	for _, limit := range []int64{16 << 20, 64 << 20, 256 << 20} {
		r := compression.NewRegistry()
		if err := r.SetMaxDecompressedSize(limit); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("registry/limit=%dMiB", limit>>20), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Decompress(bomb, "zlib"); err == nil {
					b.Fatal("bomb accepted")
				}
			}
		})
		b.Run(fmt.Sprintf("grow/limit=%dMiB", limit>>20), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				zr, err := zlib.NewReader(bytes.NewReader(bomb))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := compression.ReadLimited(zr, limit); err == nil {
					b.Fatal("bomb accepted")
				}
			}
		})
	}
}
