package compression

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// xzCodec is Kombu's "lzma"/"xz": Python's lzma.compress, which writes the
// .xz container with a CRC64 check and an 8 MiB LZMA2 dictionary (preset 6).
// Decompress also reads the legacy .lzma ("alone") format, as Python's
// lzma.decompress (FORMAT_AUTO) does.
//
// The decoder allocates the whole dictionary named in each block header up
// front (up to 4 GiB). Before decoding, the stream's index is therefore
// walked from the end to find every block header and check its dictionary
// against MaxWindow, and the declared uncompressed sizes against the limit.
type xzCodec struct{}

// xzMagic opens every .xz stream.
var xzMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}

func (xzCodec) Compress(src []byte) ([]byte, error) {
	return compressWith(src, func(w io.Writer) (io.WriteCloser, error) {
		// The zero config is xz's defaults: CRC64, 8 MiB dictionary.
		return xz.WriterConfig{}.NewWriter(w)
	})
}

func (xzCodec) Decompress(src []byte, limit int64) ([]byte, error) {
	if !bytes.HasPrefix(src, xzMagic) {
		return lzmaAloneDecompress(src, limit)
	}
	if err := xzPrecheck(src, limit); err != nil {
		return nil, err
	}
	return decodeBounded(func() (io.Reader, error) {
		return xz.ReaderConfig{}.NewReader(bytes.NewReader(src))
	}, len(src), limit)
}

// lzmaAloneDecompress decodes the legacy .lzma format: a 13-byte header
// (properties, little-endian uint32 dictionary size, uint64 uncompressed size
// or all ones for "unknown") and one LZMA stream.
func lzmaAloneDecompress(src []byte, limit int64) ([]byte, error) {
	if len(src) < lzma.HeaderLen {
		return nil, errors.New("lzma: input is neither .xz nor .lzma (too short)")
	}
	if dict := binary.LittleEndian.Uint32(src[1:5]); dict > MaxWindow {
		return nil, windowTooLarge("lzma dictionary", uint64(dict))
	}
	if size := binary.LittleEndian.Uint64(src[5:13]); size != ^uint64(0) && size > uint64(limit) {
		return nil, &tooLargeError{fmt.Sprintf("lzma header declares %d bytes, limit %d", size, limit)}
	}
	return decodeBounded(func() (io.Reader, error) {
		return lzma.ReaderConfig{DictCap: MaxWindow}.NewReader(bytes.NewReader(src))
	}, len(src), limit)
}

// xzFormatError reports a malformed .xz structure found by the precheck.
func xzFormatError(what string) error { return errors.New("xz: malformed stream: " + what) }

// xzPrecheck walks every stream of src from its end (streams may be
// concatenated and padded with groups of four zero bytes). For each stream it
// reads the footer, the index it points to, and then each block header the
// index locates, refusing an LZMA2 dictionary above MaxWindow. It also
// refuses streams whose declared uncompressed sizes add up to more than
// limit. It does not verify checksums; the decoder does.
func xzPrecheck(src []byte, limit int64) error {
	const headerLen, footerLen = 12, 12
	var declared uint64
	end := len(src)
	for {
		for end >= 4 && binary.LittleEndian.Uint32(src[end-4:end]) == 0 {
			end -= 4 // stream padding
		}
		if end == 0 {
			return nil
		}
		if end < headerLen+footerLen+8 {
			return xzFormatError("truncated")
		}
		footer := src[end-footerLen : end]
		if footer[10] != 'Y' || footer[11] != 'Z' {
			return xzFormatError("bad footer magic")
		}
		indexLen := (uint64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
		if indexLen > uint64(end-footerLen-headerLen) {
			return xzFormatError("index size out of range")
		}
		indexStart := end - footerLen - int(indexLen)
		index := src[indexStart : end-footerLen]
		if index[0] != 0 {
			return xzFormatError("bad index indicator")
		}
		p := 1
		count, k := binary.Uvarint(index[p:])
		if k <= 0 || count > uint64(len(index)) {
			return xzFormatError("bad index record count")
		}
		p += k
		type record struct{ unpadded uint64 }
		records := make([]record, 0, count)
		var blocksLen uint64
		for range count {
			unpadded, k := binary.Uvarint(index[p:])
			if k <= 0 {
				return xzFormatError("bad index record")
			}
			p += k
			uncompressed, k := binary.Uvarint(index[p:])
			if k <= 0 {
				return xzFormatError("bad index record")
			}
			p += k
			if unpadded > uint64(len(src)) || uncompressed > 1<<62 {
				return xzFormatError("index record out of range")
			}
			records = append(records, record{unpadded})
			blocksLen += (unpadded + 3) &^ 3
			declared += uncompressed
			if declared > uint64(limit) {
				return &tooLargeError{fmt.Sprintf("xz index declares more than %d bytes", limit)}
			}
		}
		if blocksLen > uint64(indexStart-headerLen) {
			return xzFormatError("blocks overrun the stream header")
		}
		pos := indexStart - int(blocksLen)
		start := pos - headerLen
		if !bytes.HasPrefix(src[start:], xzMagic) {
			return xzFormatError("bad stream header magic")
		}
		for _, rec := range records {
			if err := xzCheckBlockHeader(src[pos:indexStart]); err != nil {
				return err
			}
			pos += int((rec.unpadded + 3) &^ 3)
		}
		end = start
	}
}

// xzCheckBlockHeader checks the filter chain in the block header at the start
// of b. Layout: size byte ((n+1)*4 bytes in all), flags (filter count - 1 in
// bits 0-1, 0x40 compressed size present, 0x80 uncompressed size present),
// the optional sizes, then per filter: ID, properties size, properties; then
// padding and a CRC32.
func xzCheckBlockHeader(b []byte) error {
	if len(b) < 1 || b[0] == 0 {
		return xzFormatError("missing block header")
	}
	size := (int(b[0]) + 1) * 4
	if size > len(b) {
		return xzFormatError("block header overruns the stream")
	}
	h := b[2 : size-4] // after size and flags, before the CRC32
	flags := b[1]
	if flags&0x3C != 0 {
		return xzFormatError("reserved block flags set")
	}
	p := 0
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(h[p:])
		if k <= 0 {
			return 0, false
		}
		p += k
		return v, true
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, ok := next(); !ok {
				return xzFormatError("bad block size field")
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := next()
		propsLen, ok2 := next()
		if !ok1 || !ok2 || propsLen > uint64(len(h)-p) {
			return xzFormatError("bad filter flags")
		}
		props := h[p : p+int(propsLen)]
		p += int(propsLen)
		if id != 0x21 { // only LZMA2 carries a dictionary
			continue
		}
		if len(props) != 1 || props[0] > 40 {
			return xzFormatError("bad LZMA2 properties")
		}
		if dict := lzma2DictSize(props[0]); dict > MaxWindow {
			return windowTooLarge("xz dictionary", dict)
		}
	}
	return nil
}

// lzma2DictSize decodes the LZMA2 dictionary-size byte: 40 means 4 GiB - 1,
// otherwise (2 | c&1) << (c/2 + 11).
func lzma2DictSize(c byte) uint64 {
	if c == 40 {
		return 1<<32 - 1
	}
	return uint64(2|c&1) << (c/2 + 11)
}
