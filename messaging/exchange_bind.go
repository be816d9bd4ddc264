package messaging

import (
	"context"
	"fmt"
	"maps"

	"github.com/kombu-go/kombu/transport"
)

// BindTo binds this exchange to source (Kombu's Exchange.bind_to): the
// messages source routes with routingKey (and args, for a headers
// exchange) are routed on by this exchange, the destination. Both
// exchanges must exist. It needs a channel that implements
// transport.ExchangeBinder (AMQP: exchange.bind, a RabbitMQ extension);
// on the memory and Redis transports, which like Kombu's virtual
// transports have no exchange-to-exchange bindings, it returns an error
// matching transport.ErrUnsupported.
func (e Exchange) BindTo(ctx context.Context, ch transport.Declarer, source Exchange, routingKey string, args map[string]any) error {
	b, err := exchangeBinder(ch, "bind", e, source)
	if err != nil {
		return err
	}
	return b.BindExchange(ctx, e.Name, source.Name, routingKey, maps.Clone(args))
}

// UnbindFrom removes a binding made by [Exchange.BindTo] (Kombu's
// Exchange.unbind_from): routingKey and args must be those of the binding.
func (e Exchange) UnbindFrom(ctx context.Context, ch transport.Declarer, source Exchange, routingKey string, args map[string]any) error {
	b, err := exchangeBinder(ch, "unbind", e, source)
	if err != nil {
		return err
	}
	return b.UnbindExchange(ctx, e.Name, source.Name, routingKey, maps.Clone(args))
}

func exchangeBinder(ch transport.Declarer, op string, dest, src Exchange) (transport.ExchangeBinder, error) {
	b, ok := ch.(transport.ExchangeBinder)
	if !ok {
		return nil, fmt.Errorf("messaging: %s exchange %q to %q: %w: this transport has no exchange-to-exchange "+
			"bindings (as Kombu's virtual transports; use AMQP)", op, dest.Name, src.Name, transport.ErrUnsupported)
	}
	return b, nil
}
