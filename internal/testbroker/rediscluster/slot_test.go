package rediscluster

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
)

// crc16Bitwise is CRC16-XMODEM one bit at a time, straight from its
// definition: the reference the table-driven crc16 is checked against.
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

// hashedPart is the part of key Redis hashes, found another way than Slot
// does: the text between the first '{' and the next '}', if not empty.
func hashedPart(key string) string {
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

func TestSlotKnownValues(t *testing.T) {
	// The check value of CRC16-XMODEM, which the Redis Cluster specification
	// also gives; the slots were read from CLUSTER KEYSLOT of Redis 7.0.15.
	if got := crc16("123456789"); got != 0x31c3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	for _, c := range []struct {
		key  string
		slot int
	}{
		{"123456789", 12739},
		{"foo", 12182},
		{"foo{}{bar}", 8363}, // an empty tag: the whole key is hashed
		{"{bar", 4015},       // no closing brace: the whole key
		{"foo{{bar}}zap", Slot("{bar")},
		{"foo{bar}{zap}", Slot("bar")},
		{"{user1000}.following", Slot("user1000")},
		{"", 0},
	} {
		if got := Slot(c.key); got != c.slot {
			t.Errorf("Slot(%q) = %d, want %d", c.key, got, c.slot)
		}
	}
}

// FuzzSlot checks Slot against the bitwise CRC and a second reading of the
// hash-tag rule.
func FuzzSlot(f *testing.F) {
	for _, k := range []string{"", "a", "{", "}", "{}", "}{", "{a}", "a{b}c{d}", "{{a}}", "\x00\xff{\x80}"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		want := int(crc16Bitwise(hashedPart(key))) % SlotCount
		if got := Slot(key); got != want {
			t.Fatalf("Slot(%q) = %d, want %d", key, got, want)
		}
	})
}

// randomKeys returns n keys with a fixed seed: arbitrary bytes, braces in
// every position, and tagged keys.
func randomKeys(n int) []string {
	r := rand.New(rand.NewPCG(15, 6))
	alphabet := []byte("ab{}{}\x00\xffxyz019")
	keys := make([]string, 0, n)
	for len(keys) < n {
		b := make([]byte, r.IntN(24))
		for i := range b {
			if r.IntN(3) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		keys = append(keys, string(b))
		if r.IntN(4) == 0 {
			keys = append(keys, "{q"+string(b)+"}.unacked")
		}
	}
	return keys[:n]
}

// checkKeyslot compares Slot with CLUSTER KEYSLOT of the node at addr for
// 5,000 keys.
func checkKeyslot(t *testing.T, addr string) {
	cn, err := dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	keys := randomKeys(5000)
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		cmds := make([][]string, len(batch))
		for i, k := range batch {
			cmds[i] = []string{"CLUSTER", "KEYSLOT", k}
		}
		vs, err := cn.pipeline(context.Background(), cmds...)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range batch {
			if got := Slot(k); got != int(vs[i].Int) {
				t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, vs[i].Int)
			}
		}
	}
}
