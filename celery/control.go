package celery

import (
	"context"
	"os"
	"slices"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// Remote control over Kombu's pidbox (celery.app.control, kombu.pidbox):
// commands are broadcast to the fanout exchange celery.pidbox, each worker
// consumes its own queue <hostname>.celery.pidbox, and answers go to the
// direct exchange named in reply_to with the ticket in the headers.

const (
	pidboxExchange  = "celery.pidbox"
	controlExpires  = 10 * time.Second  // control_queue_expires
	controlTTL      = 300 * time.Second // control_queue_ttl
	controlQueueCap = 16
)

// controlRequest is one command received.
type controlRequest struct {
	body map[string]any
}

func (w *Worker) controlConsumer() messaging.ConsumerOptions {
	ex := messaging.Exchange{Name: pidboxExchange, Type: messaging.Fanout, DeliveryMode: messaging.Transient}
	q := messaging.Queue{Name: w.opts.Hostname + ".celery.pidbox", Exchange: ex, AutoDelete: true,
		Expires: controlExpires, MessageTTL: controlTTL}
	return messaging.ConsumerOptions{Queues: []messaging.Queue{q}, NoAck: true, TagPrefix: "celery-go-pidbox-",
		Callbacks: []messaging.Callback{w.controlReceive}, OnDecodeError: w.decodeError}
}

// controlReceive runs on the hub: it hands the command to the control
// goroutine, dropping it (logged) if that one is behind.
func (w *Worker) controlReceive(body any, m *messaging.Message) {
	d, ok := body.(map[string]any)
	if !ok {
		w.decodeError(m, ErrMalformed)
		return
	}
	if exp, ok := m.Headers["expires"].(float64); ok && exp > 0 && float64(time.Now().Unix()) > exp {
		return // the sender stopped waiting
	}
	if dest, ok := d["destination"].([]any); ok && len(dest) > 0 && !slices.Contains(dest, any(w.opts.Hostname)) {
		return
	}
	select {
	case w.ctl <- controlRequest{body: d}:
	default:
		w.log.Warn("celery: remote control queue full, dropping command", "method", d["method"])
	}
}

// controlLoop answers commands until ctx ends.
func (w *Worker) controlLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-w.ctl:
			w.control(ctx, r.body)
		}
	}
}

func (w *Worker) control(ctx context.Context, d map[string]any) {
	method, _ := d["method"].(string)
	var reply any
	switch method {
	case "ping":
		reply = map[string]any{"ok": "pong"}
	case "active", "dump_active":
		reply = w.activeInfo()
	case "stats":
		reply = w.stats()
	case "registered", "dump_tasks":
		w.mu.Lock()
		names := make([]string, 0, len(w.tasks))
		for n := range w.tasks {
			names = append(names, n)
		}
		w.mu.Unlock()
		slices.Sort(names)
		reply = names
	case "shutdown":
		w.log.Warn("celery: shutdown requested by remote control")
		w.Stop()
		return
	default:
		reply = map[string]any{"error": "No such command: " + method}
	}
	rt, _ := d["reply_to"].(map[string]any)
	exName, _ := rt["exchange"].(string)
	rk, _ := rt["routing_key"].(string)
	if exName == "" {
		return
	}
	ex := messaging.Exchange{Name: exName, Type: messaging.Direct, DeliveryMode: messaging.Transient}
	pctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	err := w.pub.Publish(pctx, map[string]any{w.opts.Hostname: reply}, messaging.PublishOptions{Exchange: &ex,
		RoutingKey: rk, Headers: map[string]any{"ticket": d["ticket"], "clock": w.ev.clock.Add(1)},
		Declare: []messaging.Declaration{ex}})
	if err != nil {
		w.log.Warn("celery: cannot reply to remote control", "method", method, "err", err)
	}
}

// activeInfo is inspect active's list (celery Request.info).
func (w *Worker) activeInfo() []any {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]any, 0, len(w.active))
	for _, a := range w.active {
		out = append(out, map[string]any{"id": a.t.ID, "name": a.t.Name, "args": a.t.Args, "kwargs": a.t.Kwargs,
			"type": a.t.Name, "hostname": w.opts.Hostname, "time_start": float64(a.started.UnixMicro()) / 1e6,
			"acknowledged": true, "worker_pid": os.Getpid(),
			"delivery_info": map[string]any{"exchange": a.t.Exchange, "routing_key": a.t.RoutingKey,
				"priority": a.t.Priority, "redelivered": false}})
	}
	return out
}

// stats is inspect stats' dict (the fields Celery's worker reports that
// apply to a Go worker).
func (w *Worker) stats() map[string]any {
	total := map[string]any{}
	w.processed.Range(func(k, v any) bool {
		total[k.(string)] = v.(interface{ Load() int64 }).Load()
		return true
	})
	info := w.conn.Info()
	return map[string]any{
		"total": total, "pid": os.Getpid(), "clock": w.ev.clock.Load(),
		"uptime": int(time.Since(w.started).Seconds()),
		"pool": map[string]any{"implementation": "kombu-go goroutines", "max-concurrency": w.opts.Concurrency,
			"processes": []int{os.Getpid()}},
		"prefetch_count": w.prefetch + int(w.held.Load()),
		"broker": map[string]any{"hostname": info.Hostname, "port": info.Port, "transport": info.Transport,
			"virtual_host": info.VirtualHost, "userid": info.UserID},
		"rusage": "N/A",
	}
}
