package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// returnWatch collects the messages the broker returns to `publish
// --mandatory`, and knows when every return of the messages published so
// far has arrived (barrier).
//
// Returns reach the hub by different roads. The virtual channels (memory,
// Redis) post a return to the hub before Publish returns, so running the
// hub once is enough. amqp091 hands a basic.return to the transport's
// notifier goroutine, which posts it later, even after the publisher
// confirm; nothing in that road says "done". So on AMQP the barrier
// publishes one empty mandatory marker message to the default exchange
// with a routing key no queue can have: RabbitMQ returns it after the
// returns of every earlier message of the channel, in order, and when the
// marker's return has run on the hub, so have theirs. The marker is never
// stored anywhere.
type returnWatch struct {
	h   *hub.Hub
	ch  transport.Channel
	amq bool // the marker road (AMQP)

	mu       sync.Mutex
	returned []*transport.Returned
	marker   string
	seen     bool
}

// returnsHandler is the virtual channel's way to receive returns (memory
// and Redis channels embed channel.Channel).
type returnsHandler interface {
	HandleReturns(fn func(*transport.Returned))
}

// watchReturns registers a return handler on ch, the channel the
// producer publishes on.
func watchReturns(conn *messaging.Connection, ch transport.Channel) (*returnWatch, error) {
	h, err := conn.Hub()
	if err != nil {
		return nil, err
	}
	rw := &returnWatch{h: h, ch: ch}
	switch r := ch.(type) {
	case returnsHandler:
		r.HandleReturns(rw.onReturn)
	case transport.Returner:
		rw.amq = true
		rw.marker = "kombu-cli.return-marker." + messaging.NewUUID()
		r.OnReturn(rw.onReturn)
	default:
		return nil, fmt.Errorf("--mandatory: the %s transport cannot report unroutable messages", driverOf(conn))
	}
	return rw, nil
}

// onReturn runs on the hub goroutine.
func (rw *returnWatch) onReturn(r *transport.Returned) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.amq && r.Exchange == "" && r.RoutingKey == rw.marker {
		rw.seen = true
		return
	}
	rw.returned = append(rw.returned, r)
}

// barrier returns once every return of the messages published before it
// has been handled (or ctx ends; a minute at most).
func (rw *returnWatch) barrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !rw.amq {
		return rw.h.Call(ctx, func() {})
	}
	m := &transport.Message{ContentType: "application/data", ContentEncoding: "binary",
		Properties: transport.Properties{DeliveryMode: uint8(messaging.Transient)}}
	if err := rw.ch.Publish(ctx, m, "", rw.marker, transport.PublishOptions{Mandatory: true}); err != nil {
		return err
	}
	return rw.h.Drive(ctx, func() bool {
		rw.mu.Lock()
		defer rw.mu.Unlock()
		return rw.seen
	})
}

func (rw *returnWatch) count() int {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return len(rw.returned)
}

// first describes the first return.
func (rw *returnWatch) first() string {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if len(rw.returned) == 0 {
		return ""
	}
	r := rw.returned[0]
	return fmt.Sprintf("%d %s (exchange %q, routing key %q)", r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
}
