package compression

import (
	"bytes"
	stdbzip2 "compress/bzip2"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/andybalholm/brotli"
	dsbzip2 "github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
)

// tooLargeError is how the built-in codecs report a limit breach; it matches
// ErrTooLarge and carries only the detail, since the registry adds the
// sentinel's text and the content type.
type tooLargeError struct{ detail string }

func (e *tooLargeError) Error() string        { return e.detail }
func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }

func outputTooLarge(limit int64) error {
	return &tooLargeError{fmt.Sprintf("output exceeds %d bytes", limit)}
}

func windowTooLarge(what string, n uint64) error {
	return &tooLargeError{fmt.Sprintf("%s of %d bytes exceeds MaxWindow (%d bytes)", what, n, MaxWindow)}
}

// ReadLimited reads r to EOF and returns what it read, or an error matching
// [ErrTooLarge] as soon as more than limit bytes arrive. It never reads more
// than limit+1 bytes from r, and its buffer never grows past limit+1 bytes.
// It is the helper a stream-based [Codec] uses to honour its limit.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	return readLimited(r, limit, 0)
}

// readLimited is ReadLimited with a first-buffer size hint.
func readLimited(r io.Reader, limit int64, hint int) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	// ceiling is one byte over the limit: reading it proves the overflow.
	ceiling := limit + 1
	size := int64(max(hint, 512))
	buf := make([]byte, 0, min(size, ceiling))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, outputTooLarge(limit)
			}
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), ceiling))
			copyInPieces(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		if len(buf)/yieldEvery != (len(buf)+n)/yieldEvery {
			runtime.Gosched() // see yieldEvery
		}
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, outputTooLarge(limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bombRatio is the output-to-input ratio past which a decoder stops
// keeping what it decodes and only counts it (see decodeBounded). Message
// bodies compress 3 to 10 times, rarely 30; a zlib stream can expand about
// 1032 times.
const bombRatio = 32

// decodeBounded decodes the stream that open returns (each call starts it
// again from the beginning) and refuses, with an error matching
// ErrTooLarge, output of more than limit bytes. Up to bombRatio times the
// input (at least 1 MiB) it reads as [ReadLimited] does. Past that the
// output is only counted, in a small buffer, until the stream ends or
// passes the limit: a bomb is refused without ever holding more than the
// first bombRatio*len(src) bytes, and without growing, copying and
// faulting in a buffer of twice the limit. A stream that ends within the
// limit is decoded again into a buffer of its exact size.
func decodeBounded(open func() (io.Reader, error), srcLen int, limit int64) ([]byte, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	// The first buffer: messages compress 3 to 10 times, and guessing a
	// little high costs less than growing it again.
	hint := min(4*srcLen+64, 1<<20)
	watch := max(int64(srcLen)*bombRatio, 1<<20)
	if watch >= limit {
		return readLimited(r, limit, hint)
	}
	out, err := readLimited(r, watch, hint)
	if err == nil || !errors.Is(err, ErrTooLarge) {
		return out, err
	}
	// readLimited read watch+1 bytes before it gave up.
	n, err := countLimited(r, watch+1, limit)
	if err != nil {
		return nil, err
	}
	if r, err = open(); err != nil {
		return nil, err
	}
	return readLimited(r, limit, int(n)+1)
}

// yieldEvery is how much output a decoder produces between two yields of
// the processor (runtime.Gosched). Bodies are decompressed off the hub, and
// on a machine with few cores the hub may be waiting for the processor the
// decoder holds: with the garbage collector's mark worker on the other one,
// the scheduler's own preemption would let it in only every 10 ms.
const yieldEvery = 256 << 10

// copyInPieces is copy(dst, src) in pieces of 1 MiB, yielding the
// processor between them. One copy is one runtime memmove, which the
// scheduler cannot preempt (and a preemption signal finds a goroutine
// that copies almost always inside it); into memory fresh from the OS it
// runs at page-fault speed (about 5 ms a MiB on the machine of the README's
// measurements), and a garbage collection that must stop this goroutine
// meanwhile holds up every other one, the hub's included.
func copyInPieces(dst, src []byte) {
	for len(src) > 0 {
		n := copy(dst, src[:min(len(src), 1<<20)])
		dst, src = dst[n:], src[n:]
		if len(src) > 0 {
			runtime.Gosched()
		}
	}
}

// countLimited reads r to EOF, adding to n, and returns the total, or an
// error matching ErrTooLarge once it passes limit.
func countLimited(r io.Reader, n, limit int64) (int64, error) {
	var scratch [32 << 10]byte
	for {
		k, err := r.Read(scratch[:])
		if n/yieldEvery != (n+int64(k))/yieldEvery {
			runtime.Gosched() // see yieldEvery
		}
		if n += int64(k); n > limit {
			return 0, outputTooLarge(limit)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// onlyReader hides every method but Read, so decoders cannot take shortcuts
// that skip the streaming path (zstd decodes a whole *bytes.Reader at once,
// unbounded by our limit).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// compressWith runs src through a fresh writer from newWriter.
func compressWith(src []byte, newWriter func(io.Writer) (io.WriteCloser, error)) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(src)/2 + 64)
	w, err := newWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// zlibCodec is Kombu's "zlib"/"gzip": Python's zlib.compress, the zlib format
// (RFC 1950), at zlib's default level 6.
type zlibCodec struct{}

func (zlibCodec) Compress(src []byte) ([]byte, error) {
	return compressWith(src, func(w io.Writer) (io.WriteCloser, error) {
		return zlib.NewWriterLevel(w, zlib.DefaultCompression)
	})
}

func (zlibCodec) Decompress(src []byte, limit int64) ([]byte, error) {
	return decodeBounded(func() (io.Reader, error) {
		return zlib.NewReader(bytes.NewReader(src))
	}, len(src), limit)
}

// bzip2Codec is Kombu's "bzip2": Python's bz2.compress, level 9. The standard
// library only decodes bzip2, so dsnet/compress encodes.
type bzip2Codec struct{}

func (bzip2Codec) Compress(src []byte) ([]byte, error) {
	return compressWith(src, func(w io.Writer) (io.WriteCloser, error) {
		return dsbzip2.NewWriter(w, &dsbzip2.WriterConfig{Level: dsbzip2.BestCompression})
	})
}

func (bzip2Codec) Decompress(src []byte, limit int64) ([]byte, error) {
	// The standard decoder reads concatenated streams, as Python's
	// bz2.decompress does; its memory is bounded by the 900 kB block size.
	return decodeBounded(func() (io.Reader, error) {
		return stdbzip2.NewReader(bytes.NewReader(src)), nil
	}, len(src), limit)
}

// brotliCodec is Kombu's "brotli". Python's brotli.compress defaults to
// quality 11, which is several times slower here for a few percent; any
// quality decodes the same, so use the library default, 6.
type brotliCodec struct{}

func (brotliCodec) Compress(src []byte) ([]byte, error) {
	return compressWith(src, func(w io.Writer) (io.WriteCloser, error) {
		return brotli.NewWriterLevel(w, brotli.DefaultCompression), nil
	})
}

func (brotliCodec) Decompress(src []byte, limit int64) ([]byte, error) {
	// The decoder refuses large-window streams, so its window is at most
	// 16 MiB.
	return decodeBounded(func() (io.Reader, error) {
		return brotli.NewReader(bytes.NewReader(src)), nil
	}, len(src), limit)
}

// zstdCodec is Kombu's "zstd": one zstd frame, at the library's default
// level (about zstd level 3, Python zstandard's default too), with a content
// checksum.
type zstdCodec struct{}

// zstdEncoder is created on first use and shared: EncodeAll is safe for
// concurrent use and starts no goroutines, and an encoder is costly to build.
// It is a cache, not configuration.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	// Zero frames: an empty input still yields a valid frame, as Python's
	// zstandard writes one.
	return zstd.NewWriter(nil, zstd.WithZeroFrames(true))
})

// zstdDecoders holds idle stream decoders. Concurrency 1 makes them decode
// on the caller's goroutine (no background goroutines to leak, nothing to
// Close); the window cap bounds the up-front allocation.
var zstdDecoders sync.Pool

func getZstdDecoder() (*zstd.Decoder, error) {
	if d, ok := zstdDecoders.Get().(*zstd.Decoder); ok {
		return d, nil
	}
	return zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderMaxMemory(MaxWindow),
	)
}

func (zstdCodec) Compress(src []byte) ([]byte, error) {
	enc, err := zstdEncoder()
	if err != nil {
		return nil, err
	}
	return enc.EncodeAll(src, make([]byte, 0, len(src)/2+64)), nil
}

func (zstdCodec) Decompress(src []byte, limit int64) ([]byte, error) {
	d, err := getZstdDecoder()
	if err != nil {
		return nil, err
	}
	defer func() {
		// Drop the reference to src before pooling the decoder.
		if d.Reset(nil) == nil {
			zstdDecoders.Put(d)
		}
	}()
	out, err := decodeBounded(func() (io.Reader, error) {
		return d, d.Reset(onlyReader{bytes.NewReader(src)})
	}, len(src), limit)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, &tooLargeError{fmt.Sprintf("zstd window exceeds MaxWindow (%d bytes): %v", MaxWindow, err)}
	}
	return out, err
}
