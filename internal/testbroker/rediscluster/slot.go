package rediscluster

import "github.com/kombu-go/kombu/internal/hashslot"

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = hashslot.Count

// Slot returns the hash slot of key as Redis Cluster computes it
// (internal/hashslot): CRC16 (XMODEM) of the key modulo 16384, or of its
// hash tag when it has one, the bytes between the first '{' and the first
// '}' after it, provided there is at least one. So "{user1}.a" and
// "{user1}.b" share a slot, while "{}a" and "a{}" hash whole.
func Slot(key string) int { return hashslot.Slot(key) }

// Slot returns the hash slot of key; see the function [Slot].
func (c *Cluster) Slot(key string) int { return Slot(key) }
