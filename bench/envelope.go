package bench

import (
	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/transport"
)

// decodeKombu reads a Kombu envelope into a transport message, as the Redis
// transport does, so that the baselines pay the same decoding cost.
func decodeKombu(data []byte) (*transport.Message, error) {
	e, err := envelope.Decode(data)
	if err != nil {
		return nil, err
	}
	return &transport.Message{
		Body: e.Body, ContentType: e.ContentType, ContentEncoding: e.ContentEncoding,
		Headers: e.Headers, Properties: transport.Properties(e.Properties),
		DeliveryInfo: transport.DeliveryInfo{Exchange: e.DeliveryInfo.Exchange,
			RoutingKey: e.DeliveryInfo.RoutingKey, Redelivered: e.DeliveryInfo.Redelivered,
			DeliveryTag: e.DeliveryInfo.DeliveryTag},
	}, nil
}
