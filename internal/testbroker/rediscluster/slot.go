package rediscluster

import "strings"

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = 16384

// Slot returns the hash slot of key as Redis Cluster computes it: CRC16
// (XMODEM: polynomial 0x1021, initial value 0, no reflection) of the key
// modulo 16384. When the key has a hash tag, only the tag is hashed: the
// bytes between the first '{' and the first '}' after it, provided there is
// at least one. So "{user1}.a" and "{user1}.b" share a slot, while "{}a" and
// "a{}" hash whole.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key)) % SlotCount
}

// Slot returns the hash slot of key; see the function [Slot].
func (c *Cluster) Slot(key string) int { return Slot(key) }

// crcTable holds the CRC16-XMODEM of every byte value, shifted in from an
// all-zero register.
var crcTable = func() (t [256]uint16) {
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

// crc16 is CRC16-XMODEM of s, one table step per byte.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}
