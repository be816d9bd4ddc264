package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// newTopSource picks how top reads the queues: Kombu's keys on Redis; the
// management API on RabbitMQ, or passive declares of the named queues
// when it does not answer.
func newTopSource(ctx context.Context, conn *messaging.Connection, url, mgmtURL string, names []string) (topSource, error) {
	driver := driverOf(conn)
	if driver == "redis" {
		v, err := newRedisView(url)
		if err != nil {
			return nil, err
		}
		return &redisTop{v: v, names: names}, nil
	}
	if driver == "amqp" {
		c, err := newMgmtClient(url, mgmtURL)
		if err != nil {
			return nil, err
		}
		_, err = c.queues(ctx)
		switch {
		case err == nil:
			return &mgmtTop{c: c, names: names}, nil
		case !isNoManagement(err) || len(names) == 0:
			return nil, err
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("the %s transport cannot list its queues: name them (kombu top NAME...)", driver)
	}
	return &namedTop{conn: conn, names: names}, nil
}

// redisTop samples Kombu's keys.
type redisTop struct {
	v     *redisView
	names []string
}

func (s *redisTop) sample(ctx context.Context) ([]topRow, error) {
	snap, err := s.v.snapshot(ctx, s.names)
	if err != nil {
		return nil, err
	}
	rows := make([]topRow, 0, len(snap.Queues))
	for _, q := range snap.Queues {
		un := int64(q.Unacked)
		r := topRow{Queue: q.Name, Ready: q.Messages, Unacked: &un}
		if !q.OldestUnacked.IsZero() {
			a := age(snap.Taken, q.OldestUnacked)
			r.OldestUnackedS = &a
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (s *redisTop) trendOf() (string, string) {
	return "net_per_s", " (Redis keeps no per-queue publish or consume counts)"
}

func (s *redisTop) Close() error { return s.v.Close() }

// mgmtTop samples RabbitMQ's management API.
type mgmtTop struct {
	c     *mgmtClient
	names []string
}

func (s *mgmtTop) sample(ctx context.Context) ([]topRow, error) {
	qs, err := s.c.queues(ctx)
	if err != nil {
		return nil, err
	}
	rows := []topRow{}
	for _, q := range qs {
		if len(s.names) > 0 && !contains(s.names, q.Name) {
			continue
		}
		un, consumers := q.Unacked, q.Consumers
		pub, del := q.MsgStats.PublishDetails.Rate, q.MsgStats.DeliverDetails.Rate
		rows = append(rows, topRow{Queue: q.Name, Ready: q.Ready, Unacked: &un, Consumers: &consumers,
			PublishPerS: &pub, ConsumePerS: &del})
	}
	return rows, nil
}

func (s *mgmtTop) trendOf() (string, string) {
	return "consume_per_s", " (management API: RabbitMQ updates it every 5 s)"
}

func (s *mgmtTop) Close() error { return nil }

// namedTop asks for each named queue with a passive declare: ready
// messages and consumers only.
type namedTop struct {
	conn  *messaging.Connection
	names []string
}

func (s *namedTop) sample(ctx context.Context) ([]topRow, error) {
	ch, err := s.conn.DefaultChannel(ctx)
	if err != nil {
		return nil, err
	}
	rows := []topRow{}
	for _, name := range s.names {
		info, err := ch.DeclareQueue(ctx, transport.Queue{Name: name, Passive: true})
		if errors.Is(err, transport.ErrNotFound) {
			if ch, err = s.conn.DefaultChannel(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", name, err)
		}
		consumers := info.Consumers
		rows = append(rows, topRow{Queue: name, Ready: int64(info.Messages), Consumers: &consumers})
	}
	return rows, nil
}

func (s *namedTop) trendOf() (string, string) {
	return "net_per_s", " (no management API: ready messages only)"
}

func (s *namedTop) Close() error { return nil }
