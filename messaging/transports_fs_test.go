package messaging_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/messaging"
)

// filesystem:// is served (issue 13); the seed transports with no Go port
// keep their clear error.
func TestFilesystemSchemeAndKombuOnly(t *testing.T) {
	dir := t.TempDir()
	conn, err := messaging.NewConnection("filesystem://?data_folder_in="+dir+"&data_folder_out="+dir, messaging.Options{})
	if err != nil {
		t.Fatalf("filesystem://: %v", err)
	}
	if _, err := conn.DefaultChannel(context.Background()); err != nil {
		t.Fatalf("filesystem:// channel: %v", err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"mongodb", "zookeeper", "etcd", "consul", "azurestoragequeues", "qpid", "pyro", "slmq"} {
		_, err := messaging.NewConnection(s+"://localhost", messaging.Options{})
		if !errors.Is(err, messaging.ErrUnknownTransport) || !strings.Contains(err.Error(), "no Go port") {
			t.Errorf("%s: %v", s, err)
		}
	}
}
