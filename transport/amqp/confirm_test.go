package amqp

import (
	"errors"
	"testing"

	"github.com/kombu-go/kombu/transport"
)

// TestConfirmPerMessage: without confirm_publish, PublishOptions.Confirm
// waits for that message's confirm, and the channel stays in confirm mode
// across a reopen.
func TestConfirmPerMessage(t *testing.T) {
	e := dial(t, nil)
	if e.tr.Info().Confirms {
		t.Fatal("Info().Confirms without confirm_publish")
	}
	ch := e.channel()
	q := e.queue(ch, transport.Queue{AutoDelete: true, Arguments: map[string]any{
		"x-max-length": 1, "x-overflow": "reject-publish"}})
	confirm := transport.PublishOptions{Confirm: true}
	if err := ch.Publish(ctxT(t), msg("1"), "", q, transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	// The queue is full: without a confirm the refusal goes unnoticed.
	if err := ch.Publish(ctxT(t), msg("2"), "", q, transport.PublishOptions{}); err != nil {
		t.Fatalf("unconfirmed publish into a full queue: %v, want nil", err)
	}
	if err := ch.Publish(ctxT(t), msg("3"), "", q, confirm); !errors.Is(err, ErrNacked) {
		t.Fatalf("confirmed publish into a full queue: %v, want ErrNacked", err)
	}
	// In confirm mode now, a publish without Confirm still does not wait.
	if err := ch.Publish(ctxT(t), msg("4"), "", q, transport.PublishOptions{}); err != nil {
		t.Fatalf("publish without Confirm on a confirming channel: %v, want nil", err)
	}
	// A Get of a missing queue closes the AMQP channel, which reopens: in
	// confirm mode again, or the next confirmed publish would not wait.
	if _, err := ch.Get(ctxT(t), uniq("missing"), false); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("get of a missing queue: %v", err)
	}
	if err := ch.Publish(ctxT(t), msg("5"), "", q, confirm); !errors.Is(err, ErrNacked) {
		t.Fatalf("confirmed publish after the reopen: %v, want ErrNacked", err)
	}
	if _, err := ch.PurgeQueue(ctxT(t), q); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctxT(t), msg("6"), "", q, confirm); err != nil {
		t.Fatalf("confirmed publish into an empty queue: %v", err)
	}
	if info := queueDepth(t, ch, q); info.Messages != 1 {
		t.Errorf("queue holds %d messages, want 1", info.Messages)
	}
}
