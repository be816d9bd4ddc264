package compression_test

import (
	"errors"
	"testing"

	"github.com/kombu-go/kombu/messaging/compression"
)

// fuzzLimit keeps fuzzing iterations small; the property is the same at any
// limit.
const fuzzLimit = 64 << 10

// fuzzDecompress checks that Decompress never panics, never returns more than
// the limit, and fails only with the package's sentinels.
func fuzzDecompress(f *testing.F, contentType string) {
	r := compression.NewRegistry()
	if err := r.SetMaxDecompressedSize(fuzzLimit); err != nil {
		f.Fatal(err)
	}
	for _, v := range pyVectors {
		if v.contentType == contentType {
			f.Add(mustHex(v.payload))
			f.Add(mustHex(v.empty))
		}
	}
	for _, in := range [][]byte{nil, []byte("hello"), make([]byte, 2*fuzzLimit)} {
		out, _, err := r.Compress(in, contentType)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out)
		if len(out) > 4 {
			f.Add(out[:len(out)-3])
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := r.Decompress(data, contentType)
		if err != nil {
			if !errors.Is(err, compression.ErrCorrupt) && !errors.Is(err, compression.ErrTooLarge) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			if out != nil {
				t.Fatalf("output %d bytes alongside error %v", len(out), err)
			}
			return
		}
		if len(out) > fuzzLimit {
			t.Fatalf("output of %d bytes exceeds the %d-byte limit", len(out), fuzzLimit)
		}
	})
}

func FuzzDecompressZlib(f *testing.F)   { fuzzDecompress(f, compression.ContentTypeZlib) }
func FuzzDecompressBzip2(f *testing.F)  { fuzzDecompress(f, compression.ContentTypeBzip2) }
func FuzzDecompressLZMA(f *testing.F)   { fuzzDecompress(f, compression.ContentTypeLZMA) }
func FuzzDecompressBrotli(f *testing.F) { fuzzDecompress(f, compression.ContentTypeBrotli) }
func FuzzDecompressZstd(f *testing.F)   { fuzzDecompress(f, compression.ContentTypeZstd) }
