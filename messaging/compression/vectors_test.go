package compression_test

import (
	"bytes"
	"encoding/hex"
	"strings"
)

// Test vectors produced once by Debian's Python 3.11.2 (/usr/bin/python3)
// with python3-brotli 1.0.9 and python3-zstandard 0.20.0:
//
//	import zlib, bz2, lzma, brotli, zstandard
//	p = b'[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' * 4
//	for f in (zlib.compress, bz2.compress, lzma.compress,
//	          lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
//	          brotli.compress, zstandard.ZstdCompressor().compress):
//	    print(f(p).hex(), f(b'').hex())
//
// These are exactly what Kombu's compression module sends (it calls those
// functions with their defaults).
var pyPayload = bytes.Repeat([]byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`), 4)

type pyVector struct {
	name        string // alias used to decode
	contentType string
	payload     string // hex of the compressed pyPayload
	empty       string // hex of the compressed b''
}

var pyVectors = []pyVector{
	{
		name: "zlib", contentType: "application/x-gzip",
		payload: "789c8b8e36d251308ed551a8ae0562a5e4c49c9ca4c4e4ec62252b85bcd29c1c1d05a5d4a2223491e48cc4cc3c646e7e510a945b1b1b3df20c04006c1567c5",
		empty:   "789c030000000001",
	},
	{
		name: "bzip2", contentType: "application/x-bz2",
		payload: "425a6839314159265359d2f5eb8500003f9b8050041810000a3e6d9a0a200090283468d06406815504d26d43f541e93652816098fc6099064dc9724ae68820b1e4285482c7b183e993c1725815286c2a4c6c1a2552650e880e0e0d19343a0dc725cfe2ee48a70a121a5ebd70a0",
		empty:   "425a683917724538509000000000",
	},
	{
		name: "xz", contentType: "application/x-lzma",
		payload: "fd377a585a000004e6d6b4460200210116000000742fe5a3e0014300395d002de0c4582116661a2c4f75104650978e4ff895f3ec4061730716ddc1761494b8bfe2b213c125bc2c6c4d4227e93fe6d99914ac0587c676f40000000000abba444f9095027b000155c40200000009cb8a29b1c467fb020000000004595a",
		empty:   "fd377a585a000004e6d6b446000000001cdf44211fb6f37d010000000004595a",
	},
	{
		// lzma.compress(format=lzma.FORMAT_ALONE): the legacy .lzma format,
		// which Python's lzma.decompress also accepts.
		name: "lzma", contentType: "application/x-lzma",
		payload: "5d00008000ffffffffffffffff002de0c4582116661a2c4f75104650978e4ff895f3ec4061730716ddc1761494b8bfe2b213c125bc2c6c4d4227e93fe6d99914ac0587d3d2b5fffffa529400",
		empty:   "5d00008000ffffffffffffffff0083fffbffffc0000000",
	},
	{
		name: "brotli", contentType: "application/x-brotli",
		payload: "1b4301e0c5ce96aa5d966852358d6cbb8f3f4e39e0e68107e0792019457a413d6cc04124d9c3b2669a8a17fe054d7d884b77614879a581cbfed6550a",
		empty:   "3b",
	},
	{
		name: "zstd", contentType: "application/zstd",
		payload: "28b52ffd6044000d020014035b5b322c20335d2c207b7d2c207b2263616c6c6261636b73223a206e756c6c2c2022657272636861696e63686f72647d5d0400702a502c336ba236ddeae613",
		empty:   "28b52ffd2000010000",
	},
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		panic(err) // a broken constant in this file
	}
	return b
}
