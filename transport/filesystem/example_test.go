package filesystem_test

import (
	"context"
	"fmt"
	"os"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/filesystem"
)

// A message published into a folder and taken back out of it. A Python
// Kombu service given the same folder as data_folder_in would consume it
// too (messaging.NewConnection("filesystem://?data_folder_in=DIR&data_folder_out=DIR")
// is the same through the Kombu-style API).
func Example() {
	dir, err := os.MkdirTemp("", "kombu-fs-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	h, err := hub.New(hub.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer h.Close()

	o := filesystem.DefaultOptions()
	o.DataFolderIn, o.DataFolderOut = dir, dir
	tr, err := filesystem.NewWithOptions(o)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	conn, err := tr.Dial(ctx, h)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := &transport.Message{Body: []byte("hello"), ContentType: "text/plain", ContentEncoding: "utf-8"}
	if err := ch.Publish(ctx, m, "", "greetings", transport.PublishOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	queues, _ := tr.Queues()
	fmt.Printf("%s: %d ready\n", queues[0].Name, queues[0].Ready)
	got, err := ch.Get(ctx, "greetings", true) // no-ack: the file is deleted at once
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(got.Body))
	// Output:
	// greetings: 1 ready
	// hello
}
