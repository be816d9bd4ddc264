package compression_test

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"go.uber.org/goleak"

	"github.com/kombu-go/kombu/messaging/compression"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// builtins lists every alias with the content type Kombu pairs it with.
var builtins = []struct{ alias, contentType string }{
	{"zlib", "application/x-gzip"},
	{"gzip", "application/x-gzip"},
	{"bzip2", "application/x-bz2"},
	{"bzip", "application/x-bz2"},
	{"lzma", "application/x-lzma"},
	{"xz", "application/x-lzma"},
	{"brotli", "application/x-brotli"},
	{"zstd", "application/zstd"},
	{"zstandard", "application/zstd"},
}

// contentTypes is one alias per built-in codec.
var contentTypes = []string{
	"application/x-gzip", "application/x-bz2", "application/x-lzma",
	"application/x-brotli", "application/zstd",
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAliasesAndContentTypes(t *testing.T) {
	r := compression.Default()
	for _, b := range builtins {
		_, ct, err := r.Compress([]byte("x"), b.alias)
		if err != nil {
			t.Fatalf("Compress(%q): %v", b.alias, err)
		}
		if ct != b.contentType {
			t.Errorf("Compress(%q) content type = %q, want %q", b.alias, ct, b.contentType)
		}
		got, err := r.ContentType(b.alias)
		if err != nil || got != b.contentType {
			t.Errorf("ContentType(%q) = %q, %v; want %q", b.alias, got, err, b.contentType)
		}
		// A content type names its own codec too.
		if _, ct, err := r.Compress([]byte("x"), b.contentType); err != nil || ct != b.contentType {
			t.Errorf("Compress by type %q = %q, %v", b.contentType, ct, err)
		}
	}
	if got, want := r.Encoders(), []string{
		"application/x-brotli", "application/x-bz2", "application/x-gzip",
		"application/x-lzma", "application/zstd",
	}; !slices.Equal(got, want) {
		t.Errorf("Encoders() = %q, want %q", got, want)
	}
	if got, want := r.Aliases(), []string{"brotli", "bzip", "bzip2", "gzip", "lzma", "xz", "zlib", "zstandard", "zstd"}; !slices.Equal(got, want) {
		t.Errorf("Aliases() = %q, want %q", got, want)
	}
}

// TestGzipIsZlibFormat pins Kombu's surprise: "gzip" writes the zlib format
// (RFC 1950), which compress/zlib reads and compress/gzip would not.
func TestGzipIsZlibFormat(t *testing.T) {
	out, _, err := compression.Default().Compress([]byte("hello"), "gzip")
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != 0x78 {
		t.Fatalf("first byte %#x, want 0x78 (zlib CMF), not gzip's 0x1f", out[0])
	}
	zr, err := zlib.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || string(got) != "hello" {
		t.Fatalf("zlib read %q, %v", got, err)
	}
}

func TestRoundTripEveryCodec(t *testing.T) {
	inputs := map[string][]byte{
		"empty":       {},
		"one byte":    {0},
		"text":        bytes.Repeat([]byte("kombu message body "), 1000),
		"random 64k":  randomBytes(t, 64<<10),
		"zeros 1MiB":  make([]byte, 1<<20),
		"celery body": []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
	}
	r := compression.Default()
	for _, b := range builtins {
		for name, in := range inputs {
			t.Run(b.alias+"/"+name, func(t *testing.T) {
				out, ct, err := r.Compress(in, b.alias)
				if err != nil {
					t.Fatal(err)
				}
				if len(in) > 1000 && bytes.Equal(out, in) {
					t.Fatal("output equals input")
				}
				back, err := r.Decompress(out, ct)
				if err != nil {
					t.Fatalf("Decompress: %v", err)
				}
				if !bytes.Equal(back, in) {
					t.Fatalf("round trip changed the data: %d bytes in, %d out", len(in), len(back))
				}
			})
		}
	}
}

func TestCompressionShrinksRepetitiveData(t *testing.T) {
	in := bytes.Repeat([]byte("abcdefgh"), 1<<14) // 128 KiB
	for _, ct := range contentTypes {
		out, _, err := compression.Default().Compress(in, ct)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > len(in)/20 {
			t.Errorf("%s: %d -> %d bytes; expected at least 20x", ct, len(in), len(out))
		}
	}
}

func TestUnknownCodec(t *testing.T) {
	r := compression.Default()
	_, _, err := r.Compress([]byte("x"), "snappy")
	if !errors.Is(err, compression.ErrUnknownCodec) {
		t.Fatalf("Compress(snappy) error = %v, want ErrUnknownCodec", err)
	}
	for _, want := range []string{`"snappy"`, "gzip", "zstd", "application/x-bz2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := r.Decompress([]byte("x"), "application/x-snappy"); !errors.Is(err, compression.ErrUnknownCodec) {
		t.Fatalf("Decompress error = %v, want ErrUnknownCodec", err)
	}
	if _, err := r.ContentType(""); !errors.Is(err, compression.ErrUnknownCodec) {
		t.Fatalf("ContentType(\"\") error = %v", err)
	}
	var empty compression.Registry
	_, _, err = empty.Compress(nil, "gzip")
	if !errors.Is(err, compression.ErrUnknownCodec) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty registry error = %v", err)
	}
}

func TestCorruptInput(t *testing.T) {
	r := compression.Default()
	for _, ct := range contentTypes {
		good, _, err := r.Compress(bytes.Repeat([]byte("payload "), 200), ct)
		if err != nil {
			t.Fatal(err)
		}
		bad := map[string][]byte{
			"garbage":   []byte("this is not compressed at all, not even a little"),
			"truncated": good[:len(good)/2],
			"flipped":   flipMiddle(good),
		}
		for name, in := range bad {
			_, err := r.Decompress(in, ct)
			if err == nil {
				t.Errorf("%s/%s: no error", ct, name)
				continue
			}
			if !errors.Is(err, compression.ErrCorrupt) && !errors.Is(err, compression.ErrTooLarge) {
				t.Errorf("%s/%s: error %v matches neither ErrCorrupt nor ErrTooLarge", ct, name, err)
			}
			if !strings.Contains(err.Error(), ct) {
				t.Errorf("%s/%s: error %q does not name the content type", ct, name, err)
			}
		}
	}
}

// TestTrailingBytes pins the documented difference from Python: junk after
// a zlib stream is ignored (by both), after bzip2 and xz it is an error here
// (Python's bz2 and lzma ignore it).
func TestTrailingBytes(t *testing.T) {
	r := compression.Default()
	for ct, wantErr := range map[string]bool{
		"application/x-gzip": false,
		"application/x-bz2":  true,
		"application/x-lzma": true,
	} {
		out, _, err := r.Compress([]byte("body"), ct)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Decompress(append(out, "junk"...), ct)
		if wantErr {
			if !errors.Is(err, compression.ErrCorrupt) {
				t.Errorf("%s with trailing junk: %q, %v; want ErrCorrupt", ct, got, err)
			}
		} else if err != nil || string(got) != "body" {
			t.Errorf("%s with trailing junk: %q, %v; want the body", ct, got, err)
		}
	}
}

func flipMiddle(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0xFF
	return c
}

// rot13 is a toy codec for registration tests.
type rot13 struct{}

func (rot13) Compress(src []byte) ([]byte, error) { return rot(src), nil }
func (rot13) Decompress(src []byte, limit int64) ([]byte, error) {
	if int64(len(src)) > limit {
		return nil, fmt.Errorf("rot13: %w", compression.ErrTooLarge)
	}
	return rot(src), nil
}

func rot(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			c = 'A' + (c-'A'+13)%26
		}
		out[i] = c
	}
	return out
}

func TestRegister(t *testing.T) {
	r := compression.NewRegistry()
	if err := r.Register(rot13{}, "application/x-rot13", "rot13", "rot"); err != nil {
		t.Fatal(err)
	}
	out, ct, err := r.Compress([]byte("Hello"), "rot")
	if err != nil || ct != "application/x-rot13" || string(out) != "Uryyb" {
		t.Fatalf("Compress = %q, %q, %v", out, ct, err)
	}
	back, err := r.Decompress(out, "application/x-rot13")
	if err != nil || string(back) != "Hello" {
		t.Fatalf("Decompress = %q, %v", back, err)
	}
	if !slices.Contains(r.Encoders(), "application/x-rot13") {
		t.Errorf("Encoders() = %q lacks the new type", r.Encoders())
	}
	// The default registry and other registries are unaffected.
	if _, err := compression.Default().ContentType("rot13"); !errors.Is(err, compression.ErrUnknownCodec) {
		t.Errorf("Default() sees a codec registered elsewhere: %v", err)
	}
	if _, err := compression.NewRegistry().ContentType("rot13"); !errors.Is(err, compression.ErrUnknownCodec) {
		t.Errorf("a new registry sees a codec registered elsewhere: %v", err)
	}
	// Re-pointing an existing alias, as Kombu's register does.
	if err := r.Register(rot13{}, "application/x-rot13", "gzip"); err != nil {
		t.Fatal(err)
	}
	if ct, _ := r.ContentType("gzip"); ct != "application/x-rot13" {
		t.Errorf("gzip now resolves to %q", ct)
	}
	if ct, _ := r.ContentType("zlib"); ct != "application/x-gzip" {
		t.Errorf("zlib now resolves to %q", ct)
	}
}

func TestRegisterInvalid(t *testing.T) {
	r := compression.NewRegistry()
	for name, call := range map[string]func() error{
		"nil codec":    func() error { return r.Register(nil, "a/b") },
		"empty type":   func() error { return r.Register(rot13{}, "") },
		"empty alias":  func() error { return r.Register(rot13{}, "a/b", "ok", "") },
		"zero-value r": func() error { var z compression.Registry; return z.Register(nil, "a/b") },
	} {
		if err := call(); !errors.Is(err, compression.ErrInvalidCodec) {
			t.Errorf("%s: error = %v, want ErrInvalidCodec", name, err)
		}
	}
	var z compression.Registry
	if err := z.Register(rot13{}, "a/b", "ab"); err != nil {
		t.Fatalf("zero-value Register: %v", err)
	}
	if out, ct, err := z.Compress([]byte("a"), "ab"); err != nil || ct != "a/b" || string(out) != "n" {
		t.Fatalf("zero-value registry Compress = %q, %q, %v", out, ct, err)
	}
}

func TestDefaultIsImmutable(t *testing.T) {
	d := compression.Default()
	if d != compression.Default() {
		t.Fatal("Default() returned different registries")
	}
	if err := d.Register(rot13{}, "application/x-rot13", "rot13"); !errors.Is(err, compression.ErrImmutable) {
		t.Fatalf("Register on Default: %v, want ErrImmutable", err)
	}
	if err := d.SetMaxDecompressedSize(1); !errors.Is(err, compression.ErrImmutable) {
		t.Fatalf("SetMaxDecompressedSize on Default: %v, want ErrImmutable", err)
	}
	if got := d.MaxDecompressedSize(); got != compression.DefaultMaxDecompressedSize {
		t.Fatalf("Default limit = %d", got)
	}
	c := d.Clone()
	if err := c.Register(rot13{}, "application/x-rot13", "rot13"); err != nil {
		t.Fatalf("Register on a clone: %v", err)
	}
	if err := c.SetMaxDecompressedSize(10); err != nil || c.MaxDecompressedSize() != 10 {
		t.Fatalf("clone limit: %v, %d", err, c.MaxDecompressedSize())
	}
	if _, err := d.ContentType("rot13"); err == nil {
		t.Fatal("a clone's registration leaked into Default")
	}
	if err := c.SetMaxDecompressedSize(-5); err != nil || c.MaxDecompressedSize() != compression.DefaultMaxDecompressedSize {
		t.Fatalf("negative limit should restore the default, got %d, %v", c.MaxDecompressedSize(), err)
	}
}

func TestLimitBoundary(t *testing.T) {
	in := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes
	for _, ct := range contentTypes {
		r := compression.NewRegistry()
		out, _, err := r.Compress(in, ct)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetMaxDecompressedSize(int64(len(in))); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Decompress(out, ct); err != nil || !bytes.Equal(got, in) {
			t.Errorf("%s: exactly at the limit: %d bytes, %v", ct, len(got), err)
		}
		if err := r.SetMaxDecompressedSize(int64(len(in) - 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Decompress(out, ct); !errors.Is(err, compression.ErrTooLarge) {
			t.Errorf("%s: one byte over the limit: %v, want ErrTooLarge", ct, err)
		}
	}
}

// bombSize is what every bomb in TestBomb expands to.
const bombSize = 32 << 20

// bombs returns, per content type, about bombSize zero bytes compressed. They
// are built cheaply: zstd frames, bzip2 and xz streams are concatenated
// (their decoders read concatenations), zlib is written by hand, and only
// brotli compresses for real, at its fastest level.
func bombs(t *testing.T) map[string][]byte {
	t.Helper()
	const unit = 1 << 20
	zeros := make([]byte, unit)
	out := map[string][]byte{}
	for _, ct := range []string{"application/zstd", "application/x-bz2", "application/x-lzma"} {
		one, _, err := compression.Default().Compress(zeros, ct)
		if err != nil {
			t.Fatal(err)
		}
		out[ct] = bytes.Repeat(one, bombSize/unit)
	}
	out["application/x-gzip"] = zlibZeros(bombSize)
	var b bytes.Buffer
	bw := brotli.NewWriterLevel(&b, brotli.BestSpeed)
	for range bombSize / unit {
		if _, err := bw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	out["application/x-brotli"] = b.Bytes()
	return out
}

// zlibZeros writes a zlib stream of about n zero bytes (1+258k, rounded
// down) by hand: one fixed-Huffman deflate block holding a literal 0 and then matches
// of length 258 at distance 1, 13 bits each, the deflate format's densest
// form (about 1000:1).
func zlibZeros(n int) []byte {
	out := []byte{0x78, 0x01} // zlib header: deflate, 32 KiB window, level 0 hint
	var acc uint64
	var nacc uint
	put := func(v uint64, bits uint) { // LSB-first, as deflate packs bits
		acc |= v << nacc
		nacc += bits
		for nacc >= 8 {
			out = append(out, byte(acc))
			acc >>= 8
			nacc -= 8
		}
	}
	huff := func(code uint64, bits uint) { // Huffman codes go MSB-first
		var r uint64
		for i := range bits {
			r |= (code >> i & 1) << (bits - 1 - i)
		}
		put(r, bits)
	}
	put(1, 1)     // BFINAL
	put(1, 2)     // BTYPE 01: fixed Huffman codes
	huff(0x30, 8) // literal 0
	for range (n - 1) / 258 {
		huff(0xC5, 8) // length code 285: 258 bytes
		huff(0, 5)    // distance code 0: distance 1
	}
	huff(0, 7) // end of block
	if nacc > 0 {
		put(0, 8-nacc)
	}
	// Adler-32 of m zeros: a stays 1, b adds 1 per byte.
	m := 1 + (n-1)/258*258
	return binary.BigEndian.AppendUint32(out, uint32(m%65521)<<16|1)
}

// TestBomb decompresses bombSize zero bytes with a 1 MiB limit: every codec
// must refuse, and the heap must grow by far less than the bomb.
func TestBomb(t *testing.T) {
	const limit = 1 << 20
	r := compression.NewRegistry()
	if err := r.SetMaxDecompressedSize(limit); err != nil {
		t.Fatal(err)
	}
	for ct, bomb := range bombs(t) {
		var err error
		allocated := heapAllocatedBy(func() {
			_, err = r.Decompress(bomb, ct)
		})
		if !errors.Is(err, compression.ErrTooLarge) {
			t.Errorf("%s: error = %v, want ErrTooLarge", ct, err)
		}
		t.Logf("%s: %d-byte bomb refused after allocating %d KiB", ct, len(bomb), allocated>>10)
		// The output buffer stops at limit+1 (under 2*limit with regrowth);
		// the rest is the codec's window (8 MiB for xz) and tables.
		if allocated > 16<<20 {
			t.Errorf("%s: decompressing the bomb allocated %d MiB", ct, allocated>>20)
		}
	}
}

func heapAllocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestBombDefaultLimit feeds 100 MiB of zeros (about 100 KiB of zlib at
// level 9) to the default registry, whose limit is 64 MiB: it is refused,
// and the decoder only counts past 32 times its input, so it holds a few
// MiB where its growing buffer used to reach twice the limit.
func TestBombDefaultLimit(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("inflates 64 MiB (slow under -race); skipped with -short and -race")
	}
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 100 {
		zw.Write(zeros)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	bomb := buf.Bytes()
	var err error
	allocated := heapAllocatedBy(func() {
		_, err = compression.Default().Decompress(bomb, "gzip")
	})
	if !errors.Is(err, compression.ErrTooLarge) || !strings.Contains(err.Error(), "67108864") {
		t.Fatalf("error = %v, want ErrTooLarge naming the 64 MiB limit", err)
	}
	if limit := 32*int64(len(bomb))*2 + 1<<20; int64(allocated) > limit {
		t.Errorf("refusing a %d-byte bomb allocated %d MiB, want at most %d MiB",
			len(bomb), allocated>>20, limit>>20)
	}
}

// TestHighRatioUnderLimit: a stream that expands more than 32 times but
// stays within the limit is counted, then decoded again whole, for every
// codec.
func TestHighRatioUnderLimit(t *testing.T) {
	r := compression.NewRegistry()
	if err := r.SetMaxDecompressedSize(8 << 20); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3<<20+5)
	want[0], want[len(want)-1] = 'a', 'z'
	for _, ct := range r.Encoders() {
		c, _, err := r.Compress(want, ct)
		if err != nil {
			t.Fatal(err)
		}
		if 32*len(c) > len(want) {
			t.Fatalf("%s: %d bytes compress to %d, not a high ratio", ct, len(want), len(c))
		}
		got, err := r.Decompress(c, ct)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes back", ct, len(got), err, len(want))
		}
	}
}

// infiniteZeros is an endless reader that counts what it hands out.
type infiniteZeros struct{ n int64 }

func (z *infiniteZeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += int64(len(p))
	return len(p), nil
}

func TestZlibZerosIsValid(t *testing.T) {
	for _, n := range []int{1, 259, 1 << 20} {
		zr, err := zlib.NewReader(bytes.NewReader(zlibZeros(n)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		want := 1 + (n-1)/258*258
		if err != nil || len(got) != want || slices.ContainsFunc(got, func(b byte) bool { return b != 0 }) {
			t.Fatalf("zlibZeros(%d): %d bytes, %v; want %d zero bytes", n, len(got), err, want)
		}
	}
}

func TestReadLimited(t *testing.T) {
	z := &infiniteZeros{}
	_, err := compression.ReadLimited(z, 1000)
	if !errors.Is(err, compression.ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
	if z.n != 1001 {
		t.Fatalf("read %d bytes from an endless reader, want limit+1 = 1001", z.n)
	}
	got, err := compression.ReadLimited(strings.NewReader("abc"), 3)
	if err != nil || string(got) != "abc" {
		t.Fatalf("at the limit: %q, %v", got, err)
	}
	got, err = compression.ReadLimited(strings.NewReader(""), 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty with zero limit: %q, %v", got, err)
	}
	if _, err := compression.ReadLimited(strings.NewReader("a"), 0); !errors.Is(err, compression.ErrTooLarge) {
		t.Fatalf("one byte with zero limit: %v", err)
	}
	boom := errors.New("boom")
	if _, err := compression.ReadLimited(io.MultiReader(strings.NewReader("ab"), errReader{boom}), 10); !errors.Is(err, boom) {
		t.Fatalf("reader error not passed through: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A registered codec that ignores the limit still cannot hand back more.
type careless struct{}

func (careless) Compress(src []byte) ([]byte, error)            { return src, nil }
func (careless) Decompress(src []byte, _ int64) ([]byte, error) { return make([]byte, 100), nil }

func TestRegistryEnforcesLimitOnCustomCodec(t *testing.T) {
	r := compression.NewRegistry()
	if err := r.Register(careless{}, "x/careless", "careless"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMaxDecompressedSize(10); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Decompress(nil, "careless"); !errors.Is(err, compression.ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
}

// xzStreamWithDict builds a structurally valid .xz stream holding one block
// whose LZMA2 dictionary byte is dictCode, and whose data is one
// uncompressed LZMA2 chunk of payload. The header and index CRCs are right,
// so only the dictionary size can make a decoder refuse it.
func xzStreamWithDict(dictCode byte, payload []byte) []byte {
	return xzStream(dictCode, payload, len(payload))
}

// xzStream is xzStreamWithDict with the uncompressed size the index
// declares, which may lie.
func xzStream(dictCode byte, payload []byte, declared int) []byte {
	var s bytes.Buffer
	crc := func(b []byte) []byte { return binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(b)) }
	flags := []byte{0x00, 0x00} // check type None
	s.Write([]byte{0xFD, '7', 'z', 'X', 'Z', 0x00})
	s.Write(flags)
	s.Write(crc(flags))
	// Block header: size byte, flags (1 filter), filter 0x21 with 1 props byte.
	hdr := []byte{0x02, 0x00, 0x21, 0x01, dictCode, 0x00, 0x00, 0x00}
	hdr = append(hdr, crc(hdr)...)
	s.Write(hdr)
	// LZMA2: chunk 0x01 (uncompressed, dictionary reset), size-1 big-endian,
	// data, then the end marker 0x00.
	data := []byte{0x01, byte((len(payload) - 1) >> 8), byte(len(payload) - 1)}
	data = append(data, payload...)
	data = append(data, 0x00)
	s.Write(data)
	unpadded := len(hdr) + len(data)
	for s.Len()%4 != 0 {
		s.WriteByte(0)
	}
	index := []byte{0x00, 0x01}
	index = binary.AppendUvarint(index, uint64(unpadded))
	index = binary.AppendUvarint(index, uint64(declared))
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	index = append(index, crc(index)...)
	s.Write(index)
	backward := binary.LittleEndian.AppendUint32(nil, uint32(len(index)/4-1))
	tail := append(backward, flags...)
	s.Write(crc(tail))
	s.Write(tail)
	s.Write([]byte{'Y', 'Z'})
	return s.Bytes()
}

func TestXZDictionaryClaim(t *testing.T) {
	r := compression.Default()
	// Dictionary code 16 is 1 MiB: accepted, and the stream decodes.
	ok := xzStreamWithDict(16, []byte("hello xz"))
	got, err := r.Decompress(ok, "xz")
	if err != nil || string(got) != "hello xz" {
		t.Fatalf("valid handmade stream: %q, %v", got, err)
	}
	// Code 40 claims 4 GiB, 37 claims 384 MiB: refused before any allocation.
	for _, code := range []byte{40, 37} {
		bomb := xzStreamWithDict(code, []byte("hello xz"))
		var err error
		allocated := heapAllocatedBy(func() { _, err = r.Decompress(bomb, "xz") })
		if !errors.Is(err, compression.ErrTooLarge) || !strings.Contains(err.Error(), "dictionary") {
			t.Errorf("dict code %d: error = %v, want ErrTooLarge about the dictionary", code, err)
		}
		if allocated > 1<<20 {
			t.Errorf("dict code %d: refusing allocated %d bytes", code, allocated)
		}
	}
	// Concatenated streams with padding: the second stream's claim is found.
	multi := append(append(bytes.Clone(ok), 0, 0, 0, 0), xzStreamWithDict(40, []byte("x"))...)
	if _, err := r.Decompress(multi, "xz"); !errors.Is(err, compression.ErrTooLarge) {
		t.Errorf("second stream's dictionary claim: %v, want ErrTooLarge", err)
	}
	two := append(append(bytes.Clone(ok), 0, 0, 0, 0), ok...)
	if got, err := r.Decompress(two, "xz"); err != nil || string(got) != "hello xzhello xz" {
		t.Errorf("two valid concatenated streams: %q, %v", got, err)
	}
}

func TestXZDeclaredSizeOverLimit(t *testing.T) {
	r := compression.NewRegistry()
	if err := r.SetMaxDecompressedSize(4); err != nil {
		t.Fatal(err)
	}
	_, err := r.Decompress(xzStreamWithDict(16, []byte("hello xz")), "xz")
	if !errors.Is(err, compression.ErrTooLarge) || !strings.Contains(err.Error(), "index declares") {
		t.Fatalf("error = %v, want ErrTooLarge from the index", err)
	}
}

// TestXZLyingIndex declares 10 bytes in the index but holds 60,000: the
// precheck passes, and the streaming limit stops the decoder.
func TestXZLyingIndex(t *testing.T) {
	r := compression.NewRegistry()
	if err := r.SetMaxDecompressedSize(1000); err != nil {
		t.Fatal(err)
	}
	_, err := r.Decompress(xzStream(16, make([]byte, 60000), 10), "xz")
	if !errors.Is(err, compression.ErrTooLarge) || !strings.Contains(err.Error(), "output exceeds 1000") {
		t.Fatalf("error = %v, want ErrTooLarge from the output limit", err)
	}
	// Under a high limit the lie is caught as corruption at the index.
	_, err = compression.Default().Decompress(xzStream(16, make([]byte, 600), 10), "xz")
	if !errors.Is(err, compression.ErrCorrupt) {
		t.Fatalf("error = %v, want ErrCorrupt", err)
	}
}

func TestLZMAAloneDictionaryClaim(t *testing.T) {
	// props 0x5d, dictionary 0xFFFFFFFF, size unknown, then junk.
	hdr := []byte{0x5d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00}
	var err error
	allocated := heapAllocatedBy(func() { _, err = compression.Default().Decompress(hdr, "lzma") })
	if !errors.Is(err, compression.ErrTooLarge) {
		t.Fatalf("error = %v, want ErrTooLarge", err)
	}
	if allocated > 1<<20 {
		t.Fatalf("refusing allocated %d bytes", allocated)
	}
	// A declared size over the limit is refused up front too.
	r := compression.NewRegistry()
	_ = r.SetMaxDecompressedSize(10)
	sized := []byte{0x5d, 0x00, 0x00, 0x01, 0x00, 100, 0, 0, 0, 0, 0, 0, 0, 0x00}
	if _, err := r.Decompress(sized, "lzma"); !errors.Is(err, compression.ErrTooLarge) {
		t.Fatalf("declared size: %v, want ErrTooLarge", err)
	}
	if _, err := r.Decompress([]byte{0x5d, 0}, "lzma"); !errors.Is(err, compression.ErrCorrupt) {
		t.Fatalf("short input: %v, want ErrCorrupt", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := compression.NewRegistry()
	in := bytes.Repeat([]byte("concurrent "), 500)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				ct := contentTypes[(i+j)%len(contentTypes)]
				out, _, err := r.Compress(in, ct)
				if err == nil {
					var back []byte
					back, err = r.Decompress(out, ct)
					if err == nil && !bytes.Equal(back, in) {
						err = fmt.Errorf("%s: round trip mismatch", ct)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// A writer racing the readers.
	wg.Go(func() {
		for i := range 50 {
			if err := r.Register(rot13{}, fmt.Sprintf("x/rot%d", i), fmt.Sprintf("rot%d", i)); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
