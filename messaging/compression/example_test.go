package compression_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/kombu-go/kombu/messaging/compression"
)

// A producer compresses with an alias and sends the content type in the
// "compression" header; the consumer decompresses by that header.
func Example() {
	body := bytes.Repeat([]byte(`{"hello": "world"} `), 100)

	compressed, contentType, err := compression.Default().Compress(body, "gzip")
	if err != nil {
		panic(err)
	}
	fmt.Println("compression header:", contentType)
	fmt.Println("smaller:", len(compressed) < len(body))

	plain, err := compression.Default().Decompress(compressed, contentType)
	if err != nil {
		panic(err)
	}
	fmt.Println("round trip:", bytes.Equal(plain, body))
	// Output:
	// compression header: application/x-gzip
	// smaller: true
	// round trip: true
}

// A registry of your own can lower the decompression limit.
func ExampleRegistry_SetMaxDecompressedSize() {
	r := compression.NewRegistry()
	if err := r.SetMaxDecompressedSize(1 << 10); err != nil {
		panic(err)
	}
	bomb, _, _ := r.Compress(make([]byte, 1<<20), "zstd")
	_, err := r.Decompress(bomb, "application/zstd")
	fmt.Println(errors.Is(err, compression.ErrTooLarge))
	// Output:
	// true
}

func ExampleRegistry_Encoders() {
	fmt.Println(compression.Default().Encoders())
	// Output:
	// [application/x-brotli application/x-bz2 application/x-gzip application/x-lzma application/zstd]
}
