package sqs

import (
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// TestConformance runs the transport conformance suite against the SQS
// emulator. Each test gets a queue_name_prefix of its own.
//
// RedeliveredFlag is off: SQS cannot rewrite a stored message, so a
// requeued message (ChangeMessageVisibility 0, as Kombu does) keeps its
// envelope; it is marked redelivered only when SQS reports an
// ApproximateReceiveCount above 1, which goaws does not raise for a
// visibility change. The suite reads queue sizes through goawsConn
// (goaws_test.go), which corrects the emulator's count of in-flight
// messages. Priorities are off: SQS queues are not priority
// queues (Kombu: "Supports Priority: No").
func TestConformance(t *testing.T) {
	raw := sqsURL(t)
	transporttest.Run(t, transporttest.Features{
		Topic:          true,
		TopicKombu:     true,
		Fanout:         true,
		Headers:        true,
		NotEquivalent:  true,
		RestoreOnClose: true,
		Returns:        true,
		Timestamp:      true,
	}, func(t *testing.T, h *hub.Hub) transport.Conn {
		tr, err := New(configFromURL(t, raw, testOpts(map[string]any{"queue_name_prefix": uniq("conf") + "-"})))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := dialGoaws(tr, h)
		if err != nil {
			t.Fatal(err)
		}
		return conn
	})
}
