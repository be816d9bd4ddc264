package envelope

import (
	"math/rand/v2"
	"testing"
)

// pyPlainSlow is pyPlain a byte at a time.
func pyPlainSlow(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// pyPlain agrees with the byte loop for every byte value at every position
// of strings up to 24 bytes, over plain backgrounds of every printable
// byte, and for random strings with a few special bytes.
func TestPyPlain(t *testing.T) {
	for bg := byte(0x20); bg < 0x7f; bg++ {
		for n := 1; n <= 24; n++ {
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = bg
			}
			if bg != '"' && bg != '\\' && !pyPlain(string(buf)) {
				t.Fatalf("pyPlain(%q) = false", buf)
			}
			for pos := 0; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					buf[pos] = byte(c)
					if got, want := pyPlain(string(buf)), pyPlainSlow(string(buf)); got != want {
						t.Fatalf("pyPlain(%q) = %v, want %v", buf, got, want)
					}
				}
				buf[pos] = bg
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	special := []byte{0, 0x1f, 0x20, '"', '\\', 0x7e, 0x7f, 0x80, 0xff, 'a'}
	for range 200000 {
		buf := make([]byte, r.IntN(40))
		for i := range buf {
			if r.IntN(8) == 0 {
				buf[i] = special[r.IntN(len(special))]
			} else {
				buf[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		if got, want := pyPlain(string(buf)), pyPlainSlow(string(buf)); got != want {
			t.Fatalf("pyPlain(%q) = %v, want %v", buf, got, want)
		}
	}
}
