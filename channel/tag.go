package channel

import (
	crand "crypto/rand"
	"math/rand/v2"
	"strings"
	"sync"
)

// NewDeliveryTag returns a random (version 4) UUID in its canonical
// 36-character form, as Kombu's virtual channels use for delivery tags.
// Safe for concurrent use.
func NewDeliveryTag() string {
	var u [16]byte
	tags.read(u[:])
	var s [36]byte
	formatUUID(s[:], &u)
	return string(s[:])
}

// formatUUID writes u, made a version 4 UUID, to dst in its canonical
// form.
func formatUUID(dst []byte, u *[16]byte) {
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789abcdef"
	_ = dst[35]
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hex[b>>4], hex[b&0x0f]
		j += 2
	}
}

// TagBlock hands out delivery tags like NewDeliveryTag's, made
// tagBlockSize at a time: one draw from the random source and one string
// for all of them, instead of one each (profiled: 8% of the CPU of
// publishing small messages in Redis batches went to NewDeliveryTag). A tag
// keeps its whole block alive, so TagBlock is for tags that are not kept,
// such as those written into an envelope and dropped. The zero value is
// ready; not safe for concurrent use.
type TagBlock struct {
	left string
}

const tagBlockSize = 64

// Next returns a new delivery tag.
func (t *TagBlock) Next() string {
	if len(t.left) == 0 {
		var raw [16 * tagBlockSize]byte
		tags.read(raw[:])
		var sb strings.Builder
		sb.Grow(36 * tagBlockSize)
		var s [36]byte
		for i := 0; i < tagBlockSize; i++ {
			formatUUID(s[:], (*[16]byte)(raw[16*i:]))
			sb.Write(s[:])
		}
		t.left = sb.String()
	}
	tag := t.left[:36]
	t.left = t.left[36:]
	return tag
}

// tagSource hands out random bytes in batches of 4 KiB (256 tags): each
// batch is drawn from a ChaCha8 generator (a cryptographically strong one,
// math/rand/v2 says) seeded with 32 bytes of crypto/rand for that batch.
// Drawing the 4 KiB from crypto/rand itself cost 11.3 µs here against 2.4
// µs for ChaCha8 (measured 2026-12-02), a third of a delivery tag's cost
// in Redis batches. The mutex is needed because publishers on any
// goroutine draw tags; it is held for a 16-byte copy (plus, once per
// batch, the refill).
type tagSource struct {
	mu  sync.Mutex
	gen rand.ChaCha8
	buf [4096]byte
	off int
}

var tags = &tagSource{off: 4096}

func (t *tagSource) read(p []byte) {
	t.mu.Lock()
	if t.off+len(p) > len(t.buf) {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+:
		// it crashes the program rather than return an error).
		var seed [32]byte
		crand.Read(seed[:])
		t.gen.Seed(seed)
		t.gen.Read(t.buf[:])
		t.off = 0
	}
	copy(p, t.buf[t.off:])
	t.off += len(p)
	t.mu.Unlock()
}
