package hashslot

import (
	"strings"
	"testing"
)

// TestSlot checks Slot against CLUSTER KEYSLOT. The slots were read with
// redis-cli -p PORT CLUSTER KEYSLOT KEY from a private cluster started by
// scripts/brokers.sh redis-cluster-start (Redis 7.0.15, 2026-12-02).
func TestSlot(t *testing.T) {
	for _, c := range []struct {
		key  string
		slot int
	}{
		{"", 0},
		{"foo", 12182},
		{"bar", 5061},
		{"hello", 866},
		{"somekey", 11058},
		{"123456789", 12739},
		{"é", 10180}, // bytes, not runes: 0xc3 0xa9
		{"celery", 3213},
		{"_kombu.binding.celery", 15665},
		{"kombu-bench-0a1b2c3d-s-7", 5556},
		// Hash tags.
		{"{foo}", 12182},
		{"{celery}", 3213},
		{"{celery}:unacked", 3213},
		{"{q}\x06\x163", 11958}, // a priority step list of queue q
		{"foo{hash_tag}", 2515},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"foo{bar}{zap}", 5061}, // the first tag: "bar"
		{"foo{{bar}}zap", 4015}, // the tag is "{bar"
		{"{bar", 4015},          // no '}': the whole key
		{"bar}", 6624},          // no '{': the whole key
		{"foo{}{bar}", 8363},    // an empty first tag: the whole key
		{"pre{}x", 4205},        // the same
		{"{}{a}", 13650},        // the same
		{"a{b}c{d}", 3300},      // the first tag: "b"
	} {
		if got := Slot(c.key); got != c.slot {
			t.Errorf("Slot(%q) = %d, want %d", c.key, got, c.slot)
		}
	}
}

// TestCRC16CheckValue checks crc16 against the check value of CRC-16/XMODEM
// (the CRC of "123456789"), which the Redis Cluster specification gives
// too, and every one-byte string against the bitwise reference.
func TestCRC16CheckValue(t *testing.T) {
	if got := crc16("123456789"); got != 0x31c3 {
		t.Errorf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
	for b := range 256 {
		s := string([]byte{byte(b)})
		if got, want := crc16(s), crc16Bitwise(s); got != want {
			t.Errorf("crc16(%q) = %#04x, bitwise %#04x", s, got, want)
		}
	}
}

// crc16Bitwise is CRC-16/XMODEM one bit at a time, from its definition:
// the reference the table-driven crc16 is compared with.
func crc16Bitwise(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// hashed is the part of key Redis hashes, read another way than Slot
// reads it: the text between the first '{' and the next '}', if not empty.
func hashed(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return key
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return key
	}
	return tag
}

// FuzzSlot compares Slot with the bitwise CRC of the hash tag as hashed
// finds it.
func FuzzSlot(f *testing.F) {
	for _, k := range []string{"", "a", "{", "}", "{}", "}{", "{a}", "a{b}c{d}", "{{a}}", "x{}{y}", "\x00\xff{\x80}", "{q}\x06\x169"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := int(crc16Bitwise(hashed(key)) % 16384)
		if got := Slot(key); got != want {
			t.Fatalf("Slot(%q) = %d, want %d", key, got, want)
		}
		if got := Slot(key); got < 0 || got >= Count {
			t.Fatalf("Slot(%q) = %d: out of range", key, got)
		}
	})
}

func BenchmarkSlot(b *testing.B) {
	key := "app.{celery}\x06\x163"
	for b.Loop() {
		Slot(key)
	}
}
