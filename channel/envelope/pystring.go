package envelope

import (
	"unicode/utf16"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendPyString writes s as a JSON string the way Python's json.dumps does
// with ensure_ascii: printable ASCII as is (except " and \), the usual
// two-character escapes, and everything else as \uXXXX (UTF-16 surrogate
// pairs above U+FFFF). Invalid UTF-8 is written as U+FFFD.
func appendPyString(b []byte, s string) []byte {
	b = append(b, '"')
	if pyPlain(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				b = append(b, `\"`...)
			case '\\':
				b = append(b, `\\`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			default:
				b = appendU(b, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU(b, r1)
			b = appendU(b, r2)
		} else {
			b = appendU(b, r) // also U+FFFD for an invalid byte
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// Masks for pyPlain: every byte set to 0x01, 0x20, 0x22 ('"'), 0x5c ('\\')
// and 0x80.
const (
	pyOnes   = 0x0101010101010101
	pySpaces = 0x2020202020202020
	pyQuotes = 0x2222222222222222
	pySlashs = 0x5c5c5c5c5c5c5c5c
	pyHighs  = 0x8080808080808080
)

// pyPlain reports whether appendPyString writes s as it is: no control
// character, no '"' or '\\', nothing from 0x7f up. It tests eight bytes at
// a time (Hacker's Delight 6-1, as plain does for the decoder): (w-n)&^w
// has a high bit set when some byte is below n, which finds the controls,
// and, with w xor'ed with a byte repeated, the bytes equal to it;
// w|(w+1) has one when some byte is 0x7f or more. A borrow or carry
// crossing into the next byte only follows a byte that matched. Most of an
// envelope's strings (keys, tags, names, content types) are plain, and a
// byte at a time they cost a quarter of its encoding (measured).
func pyPlain(s string) bool {
	for len(s) >= 8 {
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		q, k := w^pyQuotes, w^pySlashs
		if ((w-pySpaces)&^w|(q-pyOnes)&^q|(k-pyOnes)&^k|w|(w+pyOnes))&pyHighs != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
