// Package compression is Kombu's compression registry (kombu.compression):
// it maps the aliases a producer names ("gzip", "zstd") and the content types
// that travel in the message's "compression" header ("application/x-gzip",
// "application/zstd") to codecs that compress and decompress message bodies.
//
// A producer calls [Registry.Compress] with an alias, puts the returned
// content type in headers["compression"] and keeps the serializer's
// content-type unchanged; a consumer calls [Registry.Decompress] with that
// header before deserializing. The built-in codecs and their content types
// are Kombu's, so a Python Kombu peer reads what this package writes and the
// reverse:
//
//	alias             content type           format
//	zlib, gzip        application/x-gzip     zlib (RFC 1950), not gzip, despite the name
//	bzip2, bzip       application/x-bz2      bzip2
//	lzma, xz          application/x-lzma     .xz container (Python's lzma.compress default)
//	brotli            application/x-brotli   brotli
//	zstd, zstandard   application/zstd       zstd frame
//
// # Design
//
// Registries are values (no process-global registration). [NewRegistry]
// returns a mutable registry with the built-ins; [Default] returns a shared
// one that cannot be changed, so no package can alter what another sees.
// Derive your own with [Registry.Clone] and [Registry.Register].
//
// Decompression is bounded. A message body comes from the network, and a few
// kilobytes can expand to gigabytes, so every [Registry.Decompress] stops
// once its output passes [Registry.MaxDecompressedSize] (64 MiB unless
// changed with [Registry.SetMaxDecompressedSize]), and the xz and zstd
// decoders refuse streams whose header asks for a window above [MaxWindow]
// (they allocate it up front). The limit is enforced while the stream is
// decoded, and a built-in decoder whose output passes 32 times its input
// stops keeping it and only counts to the end or the limit, so a bomb is
// refused without the memory. A custom [Codec] receives the limit and can
// honour it with [ReadLimited].
//
// Modules: bzip2 encoding comes from github.com/dsnet/compress (the standard
// library only decodes bzip2), xz from github.com/ulikunitz/xz, zstd from
// github.com/klauspost/compress/zstd, brotli from github.com/andybalholm/brotli;
// zlib and bzip2 decoding use the standard library.
//
// Known differences from Python: trailing bytes after a bzip2 or xz stream
// are an error here, where Python's bz2 and lzma ignore them (trailing bytes
// after a zlib stream are ignored by both).
//
// # Concurrency
//
// A [Registry] is safe for concurrent use: Compress and Decompress take no
// lock (they read an immutable snapshot), and Register swaps the snapshot
// under a mutex. The built-in codecs start no goroutines; the zstd encoder and
// idle zstd decoders are cached and shared.
//
// # Errors
//
// Errors wrap the package sentinels; match them with errors.Is:
// [ErrUnknownCodec] (the message lists the registered aliases and types),
// [ErrTooLarge] (limit or window exceeded), [ErrCorrupt] (the codec could not
// decode; its own error is wrapped too), [ErrImmutable] (a change to
// [Default]) and [ErrInvalidCodec] (a bad registration).
package compression
