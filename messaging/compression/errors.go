package compression

import "errors"

// Sentinel errors. Functions wrap them with %w and add detail (the codec, the
// limit, the known aliases); match them with errors.Is. Their strings never
// change.
var (
	// ErrUnknownCodec reports an alias or content type that is not
	// registered. The wrapping error lists the registered names.
	ErrUnknownCodec = errors.New("compression: unknown compression method")

	// ErrTooLarge reports input that would decompress to more than the
	// registry's limit (see [Registry.SetMaxDecompressedSize]), or that asks
	// for a decoder window larger than [MaxWindow].
	ErrTooLarge = errors.New("compression: decompressed size exceeds the limit")

	// ErrCorrupt reports input that the codec cannot decode: a bad header, a
	// checksum mismatch, truncated data. The codec's own error is wrapped too.
	ErrCorrupt = errors.New("compression: corrupt input")

	// ErrImmutable is returned by every mutating method of the registry
	// returned by [Default]. Use [NewRegistry] or [Registry.Clone] for a
	// registry you can change.
	ErrImmutable = errors.New("compression: the default registry is immutable; use NewRegistry or Clone")

	// ErrInvalidCodec reports a bad [Registry.Register] call: a nil codec, an
	// empty content type or alias.
	ErrInvalidCodec = errors.New("compression: invalid codec registration")
)
