package memory_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/memory"
)

func TestParseConfig(t *testing.T) {
	o, err := memory.ParseConfig(transport.Config{Hostname: "b1",
		Options: map[string]any{"deadletter_queue": "dlq", "restore_on_close": "false", "confirm_publish": true}})
	if err != nil || o.Broker != "b1" || o.DeadLetterQueue != "dlq" || !o.NoRestoreOnClose {
		t.Fatalf("%+v, %v", o, err)
	}
	// Issue 12: a misspelt key names itself and the valid ones.
	_, err = memory.New(transport.Config{Options: map[string]any{"restore_on_clse": false}})
	var oe *transport.OptionError
	if !errors.As(err, &oe) || oe.Key != "restore_on_clse" || !slices.Contains(oe.Valid, "restore_on_close") {
		t.Errorf("misspelt key: %v", err)
	}
	// Kombu keys that mean nothing here are refused with the reason.
	for k, v := range map[string]any{"polling_interval": 1, "body_encoding": "base64", "confirm_publish": "no",
		"restore_on_close": "maybe"} {
		_, err := memory.ParseConfig(transport.Config{Options: map[string]any{k: v}})
		if !errors.As(err, &oe) || oe.Key != k || oe.Reason == "unknown option" {
			t.Errorf("%s=%v: %v", k, v, err)
		}
	}
}
