// Package hashslot computes the Redis Cluster hash slot of a key, as the
// cluster does (the Redis Cluster specification, "Keys distribution
// model"): CRC16 of the key modulo [Count], where only the key's hash tag
// is hashed when it has one.
//
// The hash tag is the text between the first '{' and the first '}' after
// it, when that text is not empty: "{user1000}.following" and
// "{user1000}.followers" share a slot, while "foo{}{bar}" is hashed whole
// (its first tag is empty). The transport's cluster layout puts every key
// of a queue under the queue's name as hash tag, so a queue lives in one
// slot (see transport/redis).
//
// # Design
//
// [Slot] is the whole API: the transport, the Redis Cluster test fixture
// (internal/testbroker/rediscluster) and the benchmarks (bench) each
// needed the same function, and it was written three times before this
// package. The CRC is CRC-16/XMODEM (polynomial 0x1021, initial value 0,
// no reflection, no final xor), computed a byte at a time from a 256-entry
// table built at init. The package imports the standard library only and
// sits at the bottom of the import graph (internal/archtest).
//
// # Concurrency
//
// Slot is a pure function, safe for concurrent use; the table is written
// once, at package initialisation.
//
// # Errors
//
// There are none: every string, including the empty one and invalid
// UTF-8, has a slot.
package hashslot
