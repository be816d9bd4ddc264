package messaging_test

import (
	"errors"
	"testing"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/amqp"
	"github.com/kombu-go/kombu/transport/filesystem"
	"github.com/kombu-go/kombu/transport/memory"
	"github.com/kombu-go/kombu/transport/redis"
	"github.com/kombu-go/kombu/transport/sqla"
	"github.com/kombu-go/kombu/transport/sqs"
)

// Every transport accepts the keys messaging passes on for any broker:
// Kombu's connection retry keys (messaging.Connection reads them) and
// confirm_publish=true (kombu publish --confirm sends it), and refuses a
// misspelt one by name.
func TestEveryTransportAcceptsConnectionKeys(t *testing.T) {
	parse := map[string]struct {
		cfg   transport.Config
		parse func(transport.Config) error
	}{
		"memory":     {transport.Config{Scheme: "memory"}, func(c transport.Config) error { _, err := memory.ParseConfig(c); return err }},
		"redis":      {transport.Config{Scheme: "redis"}, func(c transport.Config) error { _, err := redis.ParseConfig(c); return err }},
		"amqp":       {transport.Config{Scheme: "amqp"}, func(c transport.Config) error { _, err := amqp.ParseConfig(c); return err }},
		"filesystem": {transport.Config{Scheme: "filesystem"}, func(c transport.Config) error { _, err := filesystem.ParseConfig(c); return err }},
		"sqla":       {transport.Config{Scheme: "sqla+postgresql", Hostname: "127.0.0.1"}, func(c transport.Config) error { _, err := sqla.ParseConfig(c); return err }},
		"sqs":        {transport.Config{Scheme: "sqs"}, func(c transport.Config) error { _, err := sqs.ParseConfig(c); return err }},
	}
	for name, p := range parse {
		cfg := p.cfg
		cfg.Options = map[string]any{"max_retries": "3", "interval_start": 0.5, "interval_step": 1,
			"interval_max": "2", "connect_retries_timeout": 5, "confirm_publish": "true"}
		if err := p.parse(cfg); err != nil {
			t.Errorf("%s: connection keys refused: %v", name, err)
		}
		cfg.Options = map[string]any{"max_retires": 3}
		var oe *transport.OptionError
		if err := p.parse(cfg); !errors.As(err, &oe) || oe.Key != "max_retires" {
			t.Errorf("%s: misspelt key: err = %v, want an OptionError naming max_retires", name, err)
		}
	}
}
