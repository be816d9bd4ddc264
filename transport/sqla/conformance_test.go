package sqla

import (
	"context"
	"testing"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// features: Kombu's virtual channel over the message table. Priorities
// are not served (Kombu's SQLAlchemy transport has none: the table has no
// priority column); fanout is store-and-forward to the queues bound in
// this process.
var features = transporttest.Features{
	Topic:           true,
	TopicKombu:      true,
	Fanout:          true,
	Headers:         true,
	NotEquivalent:   true,
	RestoreOnClose:  true,
	RedeliveredFlag: true,
	Returns:         true,
	Timestamp:       true,
}

// TestConformance runs the conformance suite on PostgreSQL and on MySQL /
// MariaDB, in tables of the run's own.
func TestConformance(t *testing.T) {
	eachBackend(t, func(t *testing.T, raw string) {
		tr := newTransport(t, raw, nil)
		transporttest.Run(t, features, func(t *testing.T, h *hub.Hub) transport.Conn {
			conn, err := tr.Dial(context.Background(), h)
			if err != nil {
				t.Fatal(err)
			}
			return conn
		})
	})
}
