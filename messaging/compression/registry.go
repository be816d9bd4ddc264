package compression

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Content types of the built-in codecs. They are the values Kombu writes in
// the "compression" message header; both sides must agree on them.
const (
	// ContentTypeZlib is Kombu's "zlib"/"gzip" method. Despite the name the
	// data is in the zlib format (RFC 1950, Python's zlib.compress), not gzip.
	ContentTypeZlib = "application/x-gzip"
	// ContentTypeBzip2 is Kombu's "bzip2"/"bzip" method (Python's bz2).
	ContentTypeBzip2 = "application/x-bz2"
	// ContentTypeLZMA is Kombu's "lzma"/"xz" method. Python's lzma.compress
	// writes the .xz container (CRC64 check) by default.
	ContentTypeLZMA = "application/x-lzma"
	// ContentTypeBrotli is Kombu's "brotli" method.
	ContentTypeBrotli = "application/x-brotli"
	// ContentTypeZstd is Kombu's "zstd"/"zstandard" method.
	ContentTypeZstd = "application/zstd"
)

// DefaultMaxDecompressedSize is the decompressed-size limit of a new
// registry: 64 MiB. Change it with [Registry.SetMaxDecompressedSize] (or a
// messaging connection's Options.MaxDecompressedSize). It was 256 MiB; a
// bomb is refused once its output passes the limit, so the limit sets how
// long that takes (measured in the README, "Bad input and failures"), and
// a message body that expands past 64 MiB is rare (RabbitMQ 4 refuses
// messages over 16 MiB by default). Kombu has no limit.
const DefaultMaxDecompressedSize int64 = 64 << 20

// MaxWindow is the largest decoder window the built-in codecs accept: 64 MiB,
// the dictionary of xz's largest preset (-9). The xz and zstd decoders
// allocate their window up front from a size written in the stream header,
// so a few hostile bytes could otherwise claim gigabytes. Streams that need a
// larger window fail with [ErrTooLarge]. zlib (32 KiB), bzip2 (900 kB blocks)
// and brotli (16 MiB) windows are bounded by their formats.
const MaxWindow = 64 << 20

// Codec compresses and decompresses one method. Implementations must be safe
// for concurrent use: a registry calls them from any goroutine.
type Codec interface {
	// Compress returns the compressed form of src in a new slice.
	Compress(src []byte) ([]byte, error)
	// Decompress returns the decompressed form of src in a new slice. It must
	// stop and return an error matching ErrTooLarge as soon as the output
	// would exceed limit bytes, so that a decompression bomb cannot exhaust
	// memory; [ReadLimited] does this for stream decoders. Other failures
	// are reported as they come; the registry wraps them in ErrCorrupt.
	Decompress(src []byte, limit int64) ([]byte, error)
}

// table is one immutable snapshot of the registrations. Writers build a new
// table and swap it in, so readers never lock.
type table struct {
	codecs  map[string]Codec  // content type -> codec
	aliases map[string]string // alias -> content type
}

// Registry maps compression aliases and content types to codecs, as Kombu's
// kombu.compression module does. It is a value: create one with
// [NewRegistry], pass it where it is needed, or use the immutable [Default].
//
// Safe for concurrent use. Compress and Decompress take no lock; Register and
// the setters replace an immutable snapshot under a mutex.
//
// The zero value is an empty registry (no codecs) with the default limit.
type Registry struct {
	mu        sync.Mutex // serialises writers; readers load tab
	tab       atomic.Pointer[table]
	limit     atomic.Int64 // 0 means DefaultMaxDecompressedSize
	immutable bool
}

var defaultRegistry = func() *Registry {
	r := NewRegistry()
	r.immutable = true
	return r
}()

// Default returns the shared registry holding the built-in codecs with the
// default limit. It is immutable: Register and SetMaxDecompressedSize return
// [ErrImmutable]. Call [Registry.Clone] to derive a registry you can change.
func Default() *Registry { return defaultRegistry }

// NewRegistry returns a mutable registry holding the built-in codecs, under
// Kombu's aliases and content types:
//
//	zlib, gzip        application/x-gzip    zlib format (RFC 1950), level 6
//	bzip2, bzip       application/x-bz2     bzip2, level 9 (900 kB blocks)
//	lzma, xz          application/x-lzma    .xz container, CRC64, 8 MiB dictionary
//	brotli            application/x-brotli  brotli, quality 6
//	zstd, zstandard   application/zstd      zstd frame, level 3, with checksum
//
// The lzma decoder also reads the legacy .lzma ("alone") format, as Python's
// lzma.decompress does. The decompressed-size limit is
// [DefaultMaxDecompressedSize].
func NewRegistry() *Registry {
	r := &Registry{}
	t := &table{codecs: map[string]Codec{}, aliases: map[string]string{}}
	add := func(c Codec, ct string, aliases ...string) {
		t.codecs[ct] = c
		for _, a := range aliases {
			t.aliases[a] = ct
		}
	}
	add(zlibCodec{}, ContentTypeZlib, "zlib", "gzip")
	add(bzip2Codec{}, ContentTypeBzip2, "bzip2", "bzip")
	add(xzCodec{}, ContentTypeLZMA, "lzma", "xz")
	add(brotliCodec{}, ContentTypeBrotli, "brotli")
	add(zstdCodec{}, ContentTypeZstd, "zstd", "zstandard")
	r.tab.Store(t)
	return r
}

// Clone returns a mutable copy of r with the same codecs and limit.
func (r *Registry) Clone() *Registry {
	t := r.load()
	c := &Registry{}
	c.tab.Store(&table{codecs: maps.Clone(t.codecs), aliases: maps.Clone(t.aliases)})
	c.limit.Store(r.limit.Load())
	return c
}

func (r *Registry) load() *table {
	if t := r.tab.Load(); t != nil {
		return t
	}
	return &table{}
}

// Register adds or replaces the codec for contentType and points each alias
// at it, like Kombu's compression.register. contentType itself is always
// accepted wherever an alias is. Returns [ErrInvalidCodec] for a nil codec or
// an empty name, and [ErrImmutable] on the [Default] registry.
func (r *Registry) Register(c Codec, contentType string, aliases ...string) error {
	if r.immutable {
		return ErrImmutable
	}
	if c == nil || contentType == "" {
		return fmt.Errorf("%w: a codec and a content type are required", ErrInvalidCodec)
	}
	if slices.Contains(aliases, "") {
		return fmt.Errorf("%w: empty alias for %s", ErrInvalidCodec, contentType)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.load()
	t := &table{codecs: maps.Clone(old.codecs), aliases: maps.Clone(old.aliases)}
	if t.codecs == nil {
		t.codecs = map[string]Codec{}
	}
	if t.aliases == nil {
		t.aliases = map[string]string{}
	}
	t.codecs[contentType] = c
	for _, a := range aliases {
		t.aliases[a] = contentType
	}
	r.tab.Store(t)
	return nil
}

// SetMaxDecompressedSize sets the most bytes [Registry.Decompress] will
// produce; n <= 0 restores [DefaultMaxDecompressedSize]. The limit bounds
// memory: a built-in decoder stops as soon as its output passes n bytes,
// and holds at most about 2n bytes (the output buffer grows by doubling),
// or 64 times its input when the output passes 32 times the input (it then
// only counts until the end, and decodes again into a buffer of the exact
// size), plus the codec's window. Returns [ErrImmutable] on [Default].
func (r *Registry) SetMaxDecompressedSize(n int64) error {
	if r.immutable {
		return ErrImmutable
	}
	if n < 0 {
		n = 0
	}
	r.limit.Store(n)
	return nil
}

// MaxDecompressedSize returns the decompressed-size limit in bytes.
func (r *Registry) MaxDecompressedSize() int64 {
	if n := r.limit.Load(); n > 0 {
		return n
	}
	return DefaultMaxDecompressedSize
}

// Encoders returns the registered content types, sorted, like Kombu's
// compression.encoders().
func (r *Registry) Encoders() []string {
	return slices.Sorted(maps.Keys(r.load().codecs))
}

// Aliases returns the registered aliases, sorted.
func (r *Registry) Aliases() []string {
	return slices.Sorted(maps.Keys(r.load().aliases))
}

// ContentType resolves an alias or content type to the content type that
// goes in the "compression" header. Returns [ErrUnknownCodec] naming the
// choices when neither is registered.
func (r *Registry) ContentType(aliasOrType string) (string, error) {
	ct, _, err := r.lookup(aliasOrType)
	return ct, err
}

// lookup resolves like Kombu: an alias first, then the name as a content
// type.
func (r *Registry) lookup(name string) (string, Codec, error) {
	t := r.load()
	ct := name
	if a, ok := t.aliases[name]; ok {
		ct = a
	}
	if c, ok := t.codecs[ct]; ok {
		return ct, c, nil
	}
	return "", nil, fmt.Errorf("%w %q (choose from %s)", ErrUnknownCodec, name, r.choices(t))
}

func (r *Registry) choices(t *table) string {
	names := slices.Sorted(maps.Keys(t.aliases))
	names = append(names, slices.Sorted(maps.Keys(t.codecs))...)
	if len(names) == 0 {
		return "nothing: the registry is empty"
	}
	return strings.Join(names, ", ")
}

// Compress compresses body with the codec named by an alias ("gzip", "zstd")
// or a content type, and returns the compressed bytes with the content type
// to put in the message's "compression" header. Errors: [ErrUnknownCodec], or
// the codec's failure.
func (r *Registry) Compress(body []byte, aliasOrType string) (out []byte, contentType string, err error) {
	ct, c, err := r.lookup(aliasOrType)
	if err != nil {
		return nil, "", err
	}
	out, err = c.Compress(body)
	if err != nil {
		return nil, "", fmt.Errorf("compression: compress %s: %w", ct, err)
	}
	return out, ct, nil
}

// Decompress decompresses body with the codec named by a content type (the
// "compression" header) or an alias. The output never exceeds
// [Registry.MaxDecompressedSize]. Errors: [ErrUnknownCodec]; [ErrTooLarge]
// when the output would pass the limit or the stream asks for a window above
// [MaxWindow]; [ErrCorrupt] wrapping the codec's error for anything else.
func (r *Registry) Decompress(body []byte, aliasOrType string) ([]byte, error) {
	return r.DecompressLimit(body, aliasOrType, 0)
}

// DecompressLimit is [Registry.Decompress] with a limit of its own: the
// output never exceeds limit bytes, or the registry's limit when limit is
// 0 or less.
func (r *Registry) DecompressLimit(body []byte, aliasOrType string, limit int64) ([]byte, error) {
	ct, c, err := r.lookup(aliasOrType)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = r.MaxDecompressedSize()
	}
	out, err := c.Decompress(body, limit)
	switch {
	case err != nil && errors.Is(err, ErrTooLarge):
		return nil, fmt.Errorf("%w: %s: %w", ErrTooLarge, ct, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, ct, err)
	case int64(len(out)) > limit:
		// A registered codec that ignored the limit: refuse the result
		// anyway, so callers can rely on the bound's observable half.
		return nil, fmt.Errorf("%w: %s: %d bytes, limit %d", ErrTooLarge, ct, len(out), limit)
	}
	return out, nil
}
