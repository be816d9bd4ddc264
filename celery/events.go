package celery

import (
	"context"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// EventExchange is the exchange Celery's events go to: a topic exchange,
// except on Redis where Celery makes it fanout (celery.events.get_exchange).
const EventExchange = "celeryev"

// events publishes Celery events (celery.events.EventDispatcher): a JSON
// dict with type, hostname, utcoffset, pid, clock, timestamp and the
// event's fields, sent transient to celeryev with the type, dashes turned
// to dots, as routing key, and the header {"hostname": ...}.
type events struct {
	w     *Worker
	clock atomic.Int64
}

func newEvents(w *Worker) *events { return &events{w: w} }

func (e *events) exchange() messaging.Exchange {
	kind := messaging.Topic
	if tr := e.w.pubConn.Info().Transport; tr == "redis" || tr == "rediss" || tr == "sentinel" {
		kind = messaging.Fanout
	}
	return messaging.Exchange{Name: EventExchange, Type: kind, Durable: true, DeliveryMode: messaging.Transient}
}

// utcoffset is Celery's utils.time.utcoffset(): hours west of UTC.
func utcoffset() int {
	_, off := time.Now().Zone()
	return -off / 3600
}

// send publishes one event, logging failures (events are best effort).
func (e *events) send(ctx context.Context, typ string, fields map[string]any) {
	ev := map[string]any{}
	for k, v := range fields {
		ev[k] = v
	}
	ev["type"] = typ
	ev["hostname"] = e.w.opts.Hostname
	ev["utcoffset"] = utcoffset()
	ev["pid"] = os.Getpid()
	ev["clock"] = e.clock.Add(1)
	ev["timestamp"] = float64(time.Now().UnixMicro()) / 1e6
	ex := e.exchange()
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	rk := []byte(typ)
	for i, c := range rk {
		if c == '-' {
			rk[i] = '.'
		}
	}
	err := e.w.pub.Publish(ctx, ev, messaging.PublishOptions{Exchange: &ex, RoutingKey: string(rk),
		DeliveryMode: messaging.Transient, Headers: map[string]any{"hostname": e.w.opts.Hostname},
		Declare: []messaging.Declaration{ex}})
	if err != nil {
		e.w.log.Warn("celery: cannot send event", "type", typ, "err", err)
	}
}

// task sends a task event with uuid, when task events are on.
func (e *events) task(t *Task, typ string, fields map[string]any) {
	if !e.w.opts.SendEvents {
		return
	}
	if fields == nil {
		fields = map[string]any{}
	}
	fields["uuid"] = t.ID
	e.send(context.Background(), typ, fields)
}

// workerFields are the fields of worker-online/heartbeat/offline.
func (e *events) workerFields() map[string]any {
	e.w.mu.Lock()
	active := len(e.w.active)
	e.w.mu.Unlock()
	return map[string]any{"freq": e.w.opts.HeartbeatInterval.Seconds(), "active": active,
		"processed": e.w.total.Load(), "loadavg": []float64{0, 0, 0},
		"sw_ident": "kombu-go", "sw_ver": "1.0", "sw_sys": runtime.GOOS}
}

// heartbeats sends worker-online, then worker-heartbeat every
// HeartbeatInterval until ctx ends.
func (e *events) heartbeats(ctx context.Context) {
	e.send(ctx, "worker-online", e.workerFields())
	t := time.NewTicker(e.w.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.send(ctx, "worker-heartbeat", e.workerFields())
		}
	}
}
