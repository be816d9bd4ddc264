package hashslot

import "strings"

// Count is the number of hash slots of a Redis Cluster.
const Count = 16384

// Slot returns the hash slot of key: CRC16 (XMODEM) of key's hash tag, or
// of the whole key when it has none (see the package doc), modulo Count.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key) % Count)
}

// table holds the CRC-16/XMODEM of every byte value shifted in from an
// all-zero register, so that crc16 takes one step a byte instead of eight.
var table = func() (t [256]uint16) {
	for b := range t {
		r := uint16(b) << 8
		for range 8 {
			if r&0x8000 != 0 {
				r = r<<1 ^ 0x1021
			} else {
				r <<= 1
			}
		}
		t[b] = r
	}
	return t
}()

// crc16 is CRC-16/XMODEM of s.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ table[byte(crc>>8)^s[i]]
	}
	return crc
}
