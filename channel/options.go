package channel

import "log/slog"

// Options configure a [Channel]. The zero value is ready to use. The
// transports fill them from their own typed options (redis.Options,
// memory.Options), which read Kombu's option maps.
type Options struct {
	// State holds the exchanges and bindings this channel routes with.
	// Channels that should see each other's declarations share one (the
	// memory transport shares one per broker, the Redis transport one per
	// transport). Default: a new State private to the channel.
	State *State
	// DeadLetterQueue receives messages published to a direct, topic or
	// headers exchange that no binding matches (Kombu's deadletter_queue
	// transport option). Default: "", unroutable messages are dropped (or
	// returned, see [Channel.HandleReturns]).
	DeadLetterQueue string
	// NoRestoreOnClose leaves unacknowledged messages alone when the channel
	// closes (Kombu's do_restore=False, the memory transport's Kombu
	// behaviour: they are lost; on Redis the visibility timeout brings them
	// back). Default: false, Close gives every unacknowledged message back to
	// its queue, so that no message is lost when a consumer dies.
	NoRestoreOnClose bool
	// VHost names the virtual host in error texts ("NOT_FOUND - no queue
	// 'q' in vhost '/'"). Default: "/".
	VHost string
	// PullBatch bounds how many messages the channel takes from a [Puller]
	// in one call. Default: 128.
	PullBatch int
	// Logger receives diagnostics: undeliverable messages, failed
	// settlements. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.State == nil {
		o.State = NewState()
	}
	if o.VHost == "" {
		o.VHost = "/"
	}
	if o.PullBatch <= 0 {
		o.PullBatch = 128
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}
