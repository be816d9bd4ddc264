package channel

import (
	"crypto/rand"
	"sync"
)

// NewDeliveryTag returns a random (version 4) UUID in its canonical
// 36-character form, as Kombu's virtual channels use for delivery tags.
// Safe for concurrent use.
func NewDeliveryTag() string {
	var u [16]byte
	tags.read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	const hex = "0123456789abcdef"
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[b>>4], hex[b&0x0f]
		j += 2
	}
	return string(s[:])
}

// tagSource hands out random bytes read from crypto/rand in batches: one
// system call per 256 tags instead of one per tag. The mutex is needed
// because publishers on any goroutine draw tags; it is held for a 16-byte
// copy (plus, once per batch, the refill).
type tagSource struct {
	mu  sync.Mutex
	buf [4096]byte
	off int
}

var tags = &tagSource{off: 4096}

func (t *tagSource) read(p []byte) {
	t.mu.Lock()
	if t.off+len(p) > len(t.buf) {
		// crypto/rand.Read never fails on supported platforms (Go 1.24+:
		// it crashes the program rather than return an error).
		rand.Read(t.buf[:])
		t.off = 0
	}
	copy(p, t.buf[t.off:])
	t.off += len(p)
	t.mu.Unlock()
}
