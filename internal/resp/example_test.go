package resp_test

import (
	"fmt"

	"github.com/kombu-go/kombu/internal/resp"
)

// A BRPOP reply and a timeout reply arrive in pieces; each Next returns a
// reply once its last byte is in.
func Example() {
	cmd := resp.AppendCommand(nil, "BRPOP", "celery", "1")
	fmt.Printf("%q\n", cmd)

	var r resp.Reader
	for _, chunk := range []string{"*2\r\n$6\r\ncel", "ery\r\n$7\r\n{\"a\":1}\r\n*-", "1\r\n"} {
		r.Feed([]byte(chunk))
		for {
			v, ok, err := r.Next()
			if err != nil {
				fmt.Println("protocol error:", err)
				return
			}
			if !ok {
				break // wait for the socket to be readable again
			}
			if v.IsNull() {
				fmt.Println("timeout")
				continue
			}
			// v is valid until the next Feed or Next: use it or Clone it.
			fmt.Printf("queue %s: %s\n", v.Elems[0].Bytes(), v.Elems[1].Bytes())
		}
	}
	// Output:
	// "*3\r\n$5\r\nBRPOP\r\n$6\r\ncelery\r\n$1\r\n1\r\n"
	// queue celery: {"a":1}
	// timeout
}
