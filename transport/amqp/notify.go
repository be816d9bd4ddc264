package amqp

import (
	"reflect"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// notifier is the connection's one goroutine for amqp091's notification
// channels: connection close and blocked, and every AMQP channel's returns.
// amqp091 sends on them from its reader goroutine, which stalls (up to a
// timeout, then drops) when nobody receives, so the notifier always
// receives and never blocks: events for the hub go through Post, events for
// the executor through its queue. The set of channels changes with every
// (re)connection and AMQP channel, so it selects with reflect.Select;
// notifications are rare, so the O(n) select costs nothing that matters.
type notifier struct {
	c     *conn
	ctl   chan watch
	quit  chan struct{}
	ended chan struct{}
}

type watchKind uint8

const (
	watchClose watchKind = iota
	watchBlocked
	watchReturn
)

// watch is one notification channel to receive from.
type watch struct {
	kind watchKind
	gen  uint64   // watchClose: the connection generation
	ch   *channel // watchReturn: the transport channel
	src  reflect.Value
}

func newNotifier(c *conn) *notifier {
	return &notifier{c: c, ctl: make(chan watch, 16), quit: make(chan struct{}), ended: make(chan struct{})}
}

// watchConn registers a new AMQP connection's close and blocked channels.
// Called by the executor (and by newConn before the executor starts).
func (n *notifier) watchConn(ac *amqp091.Connection, gen uint64) {
	closes := ac.NotifyClose(make(chan *amqp091.Error, 1))
	blocks := ac.NotifyBlocked(make(chan amqp091.Blocking, 4))
	n.add(watch{kind: watchClose, gen: gen, src: reflect.ValueOf(closes)})
	n.add(watch{kind: watchBlocked, src: reflect.ValueOf(blocks)})
}

// watchReturns registers an AMQP channel's return channel.
func (n *notifier) watchReturns(ch *channel, returns chan amqp091.Return) {
	n.add(watch{kind: watchReturn, ch: ch, src: reflect.ValueOf(returns)})
}

func (n *notifier) add(w watch) {
	select {
	case n.ctl <- w:
	case <-n.ended:
	}
}

// stop ends the notifier and waits for it.
func (n *notifier) stop() {
	select {
	case <-n.quit:
	default:
		close(n.quit)
	}
	<-n.ended
}

func (n *notifier) run() {
	defer close(n.ended)
	c := n.c
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.quit)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.ctl)},
	}
	watches := []watch{{}, {}} // parallel to cases
	for {
		i, v, ok := reflect.Select(cases)
		switch {
		case i == 0:
			return
		case i == 1:
			w := v.Interface().(watch)
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: w.src})
			watches = append(watches, w)
			continue
		case !ok:
			// amqp091 closed it: the connection or channel is over. A
			// connection closed before its close listener was registered
			// closes the listener without a value: report that too (the
			// executor ignores it when the connection is fine).
			if w := watches[i]; w.kind == watchClose {
				gen := w.gen
				c.enqueue(op{kind: opEvent, ev: func() { c.lost(gen, nil) }})
			}
			cases = append(cases[:i], cases[i+1:]...)
			watches = append(watches[:i], watches[i+1:]...)
			continue
		}
		w := watches[i]
		switch w.kind {
		case watchClose:
			e, _ := v.Interface().(*amqp091.Error)
			gen := w.gen
			c.enqueue(op{kind: opEvent, ev: func() { c.lost(gen, e) }})
		case watchBlocked:
			b := v.Interface().(amqp091.Blocking)
			if b.Active {
				c.log.Warn("amqp: the broker blocked the connection", "reason", b.Reason)
			} else {
				c.log.Info("amqp: the broker unblocked the connection")
			}
			c.h.Post(func() {
				if fn := c.onBlocked.Load(); fn != nil {
					(*fn)(b.Active, b.Reason)
				}
			})
		case watchReturn:
			r := v.Interface().(amqp091.Return)
			ret := fromReturn(&r)
			ch := w.ch
			c.h.Post(func() {
				if fn := ch.onReturn.Load(); fn != nil {
					(*fn)(ret)
					return
				}
				c.log.Warn("amqp: message returned by the broker and no OnReturn handler",
					"code", ret.ReplyCode, "text", ret.ReplyText,
					"exchange", ret.Exchange, "routing_key", ret.RoutingKey)
			})
		}
	}
}
