package redis

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/kombu-go/kombu/internal/resp"
	"github.com/kombu-go/kombu/transport"
)

// The fanout side of a channel: PUB/SUB messages read on the LISTEN
// socket, recorded (unless a no-ack consumer takes them) and delivered
// within the prefetch window. Hub goroutine only.

// onPubsub handles the replies of a subscribed LISTEN socket (arrays
// whose first element names them); it returns false for other replies.
func (st *store) onPubsub(s *hubSock, v resp.Value) bool {
	a := v.Array()
	if v.Kind != resp.Array || len(a) == 0 {
		return false
	}
	switch string(a[0].Str) {
	case "psubscribe", "punsubscribe", "subscribe", "unsubscribe":
		if len(a) == 3 {
			st.subscribed = int(a[2].Int) // the server's count after this reply
		}
		return true
	case "pong":
		s.pingOut = false
		if len(s.exp) > 0 && s.exp[0].kind == rPing {
			s.exp = s.exp[:copy(s.exp, s.exp[1:])]
		}
		return true
	case "pmessage":
		if len(a) == 4 {
			st.onFanout(a[2].Str, a[3].Str)
		}
		return true
	case "message":
		if len(a) == 3 {
			st.onFanout(a[1].Str, a[2].Str)
		}
		return true
	}
	return false
}

// onFanout takes one PUB/SUB message: the exchange is the channel name
// without the global prefix and the fanout prefix, up to the first "/".
func (st *store) onFanout(chanName, data []byte) {
	if len(data) == 0 {
		return
	}
	name := string(chanName)
	name = strings.TrimPrefix(name, st.o.prefix)
	if rest, ok := strings.CutPrefix(name, st.o.fanoutPrefix); ok && st.o.fanoutPrefix != "" {
		name = rest
	} else if strings.HasPrefix(name, "/") { // Kombu: drop "/<db>."
		if _, rest, ok := strings.Cut(name, "."); ok {
			name = rest
		}
	}
	name, _, _ = strings.Cut(name, "/")
	q := st.fanoutTo[name]
	if q == "" {
		return
	}
	fm := fanoutMsg{queue: q, raw: bytes.Clone(data)}
	m, err := decodeEnvelope(fm.raw)
	if err != nil {
		m = &transport.Message{Body: fm.raw, Err: err}
	}
	fm.m = m
	fm.tag = m.DeliveryInfo.DeliveryTag
	if fm.tag == "" {
		sum := sha1.Sum(fm.raw)
		fm.tag = hex.EncodeToString(sum[:])
		m.DeliveryInfo.DeliveryTag = fm.tag
	} else {
		fm.ex, fm.rk = m.DeliveryInfo.Exchange, m.DeliveryInfo.RoutingKey
	}
	st.backlog = append(st.backlog, fm)
}

// afterRead runs once a read burst has been handled: the consume socket
// sends its next command if it is free; fanout messages are
// recorded (the executor writes their unacked records, then they are
// delivered) or delivered, within the window; the LISTEN reader pauses
// while the window is full.
func (st *store) afterRead(s *hubSock) {
	if s.kind != kindLISTEN {
		st.pump() // whatever the replies were, the socket may be free now
		return
	}
	st.deliverBacklog()
	if st.room() <= 0 && s.state == sockOpen && !st.paused {
		st.paused = true
		st.c.h.RemoveReader(s.fd)
	}
}

// deliverBacklog moves backlogged fanout messages on, as far as the window
// allows.
func (st *store) deliverBacklog() {
	room := st.ch.Room() - st.inflight - st.held() - st.execOut - st.othersHeld()
	if room <= 0 || len(st.backlog) == 0 {
		return
	}
	var rec []fanoutMsg
	for ; room > 0 && len(st.backlog) > 0; room-- {
		fm := st.backlog[0]
		st.backlog[0] = fanoutMsg{}
		st.backlog = st.backlog[1:]
		// NoAck names the consumer Deliver picks next, skipping cancelled
		// ones as it does; only a Cancel from another goroutine between
		// the two calls can make them differ.
		if st.o.ackEmulation && !st.ch.NoAck(fm.queue) {
			rec = append(rec, fm)
			continue
		}
		st.handOver(fm.queue, fm.m, false)
	}
	if len(st.backlog) == 0 {
		st.backlog = nil
	}
	if len(rec) == 0 {
		return
	}
	st.inflight += len(rec)
	c := st.c
	c.exec.do(func(ctx context.Context) {
		err := c.record(ctx, rec)
		c.h.Post(func() {
			if err != nil {
				c.o.log.Warn("redis: unacked records of fanout messages not written", "count", len(rec), "err", err)
			}
			st.deliverRecorded(rec, err == nil)
		})
	})
}

// deliverRecorded hands over fanout messages once the executor wrote
// their records (recorded) or failed to. Each was recorded for the
// consumer NoAck named; a no-ack one may take it now (the other was
// cancelled meanwhile). A callback that panics leaves the rest to the
// next turn; a closed store drops their records (not delivered, as Kombu
// drops a fanout message nobody listens to).
func (st *store) deliverRecorded(rec []fanoutMsg, recorded bool) {
	i := 0
	defer func() {
		if rest := rec[i:]; len(rest) > 0 {
			st.c.h.CallSoon(func() { st.deliverRecorded(rest, recorded) })
		}
	}()
	for i < len(rec) {
		if st.closed {
			st.inflight -= len(rec) - i
			if recorded {
				for _, fm := range rec[i:] {
					st.c.exec.ack(st.o.forQueue(fm.queue), fm.tag)
				}
			}
			i = len(rec)
			return
		}
		fm := rec[i]
		i++
		st.inflight--
		st.handOver(fm.queue, fm.m, recorded)
	}
}
