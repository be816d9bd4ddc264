package serializer_test

import (
	"errors"
	"fmt"

	"github.com/kombu-go/kombu/messaging/serializer"
)

// A producer serializes with the default (json) and sends the content type
// and encoding as message properties; a consumer decodes by them, under its
// accept list.
func Example() {
	r := serializer.Default()
	ct, ce, body, err := r.Dumps(map[string]any{"args": []int{2, 3}}, "")
	if err != nil {
		panic(err)
	}
	fmt.Println(ct, ce, string(body))

	accept, err := r.PrepareAccept([]string{"json"})
	if err != nil {
		panic(err)
	}
	v, err := r.Loads(body, ct, ce, accept)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%v %T\n", v, v.(map[string]any)["args"].([]any)[0])
	// Output:
	// application/json utf-8 {"args":[2,3]}
	// map[args:[2 3]] int64
}

// Content outside the accept list is refused with Kombu's message; only
// application/data and application/text are always trusted.
func ExampleRegistry_Loads_accept() {
	r := serializer.Default()
	accept, _ := r.PrepareAccept([]string{"json"})
	_, err := r.Loads([]byte("k: v"), "application/x-yaml", "utf-8", accept)
	fmt.Println(err)
	fmt.Println(errors.Is(err, serializer.ErrContentDisallowed))
	v, _ := r.Loads([]byte("raw bytes"), "application/data", "binary", accept)
	fmt.Printf("%T\n", v)
	// Output:
	// serializer: Refusing to deserialize untrusted content of type yaml (application/x-yaml)
	// true
	// []uint8
}

// A Celery task body decodes into a typed value.
func ExampleRegistry_LoadsInto() {
	body := []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`)
	var msg struct {
		Args   []int
		Kwargs map[string]any
		Embed  map[string]any
	}
	parts := []any{&msg.Args, &msg.Kwargs, &msg.Embed}
	if err := serializer.Default().LoadsInto(body, "application/json", "utf-8", nil, &parts); err != nil {
		panic(err)
	}
	fmt.Println(msg.Args, len(msg.Kwargs), len(msg.Embed))
	// Output:
	// [2 3] 0 4
}

// Kombu 5.3+ type envelopes decode to Go values.
func ExampleRegistry_Loads_envelopes() {
	body := []byte(`{"eta": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05+00:00"},
		"price": {"__type__": "decimal", "__value__": "12.50"}}`)
	v, _ := serializer.Default().Loads(body, "application/json", "utf-8", nil)
	m := v.(map[string]any)
	fmt.Printf("%T %v\n", m["eta"], m["eta"])
	fmt.Printf("%T %v\n", m["price"], m["price"])
	// Output:
	// time.Time 2024-01-02 03:04:05 +0000 UTC
	// string 12.50
}

// Your own registry can enable more formats; Default never changes.
func ExampleNewRegistry() {
	r := serializer.NewRegistry()
	if err := r.EnableInsecure("msgpack"); err != nil {
		panic(err)
	}
	ct, ce, body, _ := r.Dumps([]any{1, "two"}, "msgpack")
	v, err := r.Loads(body, ct, ce, nil)
	fmt.Println(ct, ce, v, err)
	_, err = serializer.Default().Loads(body, ct, ce, nil)
	fmt.Println(err)
	// Output:
	// application/x-msgpack binary [1 two] <nil>
	// serializer: Refusing to deserialize disabled content of type msgpack (application/x-msgpack)
}
