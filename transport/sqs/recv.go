package sqs

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// receiver is the hub-owned consumer state of one channel: the queues it
// consumes, visited in turn (Kombu's FairCycle over _get_bulk), and the one
// ReceiveMessage it may have in flight on the connection's receiver
// goroutine. Hub goroutine only.
type receiver struct {
	queues []string
	next   int // index of the next queue to poll
	// empty counts consecutive polls that found nothing; after a whole
	// round of them the channel sleeps PollingInterval.
	empty    int
	inflight *recvReq
	sleep    interface{ Cancel() } // the polling_interval timer (a *timer.Entry)
	closed   bool
}

// recvReq is one ReceiveMessage handed to the receiver goroutine.
type recvReq struct {
	queue  string
	max    int
	ctx    context.Context
	cancel context.CancelFunc
	// stopped: the request was cancelled (the connection stopped its
	// receiver) before it ended. Set on the receiver goroutine before the
	// result is posted.
	stopped bool
}

// handle names one received message for DeleteMessage or
// ChangeMessageVisibility.
type handle struct {
	queue   string
	receipt string
}

// Consuming records the consumed queues and starts polling them. A
// receive in flight is left to finish: cancelling it could leave what SQS
// already handed out hidden for a visibility timeout; what it brings back
// for a queue nobody consumes any more is requeued by the channel.
func (s *store) Consuming(queues []string) {
	s.rx.queues = append(s.rx.queues[:0], queues...)
	s.rx.empty = 0
	if len(queues) == 0 {
		s.stopSleep()
		return
	}
	s.poll()
}

// Resume polls again once the prefetch window has room.
func (s *store) Resume() { s.poll() }

// Close stops polling. A ReceiveMessage in flight finishes on the
// receiver goroutine, which makes what it brings back visible again at
// once (Conn.Close waits for it).
func (s *store) Close() error {
	s.rx.closed = true
	s.closed.Store(true)
	s.stopSleep()
	return nil
}

func (s *store) stopSleep() {
	if s.rx.sleep != nil {
		s.rx.sleep.Cancel()
		s.rx.sleep = nil
	}
}

// poll starts the next ReceiveMessage unless one is in flight, the channel
// sleeps, has nothing to consume or no room: up to min(room, 10) messages
// (Kombu's _get_message_estimate) from the next queue of the cycle, with a
// long poll of WaitTimeSeconds.
func (s *store) poll() {
	rx := &s.rx
	if rx.closed || rx.inflight != nil || rx.sleep != nil || len(rx.queues) == 0 || !s.ch.CanConsume() {
		s.c.t.o.Logger.Debug("sqs: no poll", "closed", rx.closed, "inflight", rx.inflight != nil,
			"sleep", rx.sleep != nil, "queues", len(rx.queues), "room", s.ch.Room())
		return
	}
	room := s.ch.Room()
	if room > maxReceive {
		room = maxReceive
	}
	if rx.next >= len(rx.queues) {
		rx.next = 0
	}
	q := rx.queues[rx.next]
	rx.next++
	r := &recvReq{queue: q, max: room}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	rx.inflight = r
	wait := s.c.t.o.WaitTimeSeconds
	if !s.c.recv.do(func(wctx context.Context) { s.receive(wctx, r, wait) }) {
		r.cancel()
		rx.inflight = nil
	}
}

// receive runs on the receiver goroutine and posts its result to the hub.
func (s *store) receive(wctx context.Context, r *recvReq, wait int) {
	defer r.cancel()
	ctx := r.ctx
	if wctx.Err() != nil || ctx.Err() != nil {
		r.stopped = true
		s.c.h.Post(func() { s.received(r, nil, context.Canceled) })
		return
	}
	stop := context.AfterFunc(wctx, r.cancel)
	defer stop()
	u, err := s.cl().url(ctx, r.queue, true)
	var msgs []types.Message
	if err == nil {
		var out *awssqs.ReceiveMessageOutput
		out, err = s.cl().sdk(s.cl().canonical(r.queue)).ReceiveMessage(ctx, receiveInput(u, r.max, wait), noRetry)
		if err == nil {
			msgs = out.Messages
		} else {
			err = wrap("receive message", err)
		}
	}
	r.stopped = ctx.Err() != nil
	if s.closed.Load() {
		// The channel closed meanwhile; the hub may no longer be driven.
		s.release(r.queue, msgs)
		return
	}
	s.c.h.Post(func() { s.received(r, msgs, err) })
}

// noRetry turns the SDK's retries off for ReceiveMessage: a retried
// receive hides what the failed attempt took for a visibility timeout; the
// consumer polls again by itself.
func noRetry(o *awssqs.Options) { o.RetryMaxAttempts = 1 }

// received delivers what a ReceiveMessage brought, on the hub, and polls
// again.
func (s *store) received(r *recvReq, msgs []types.Message, err error) {
	rx := &s.rx
	if rx.inflight == r {
		rx.inflight = nil
	}
	s.c.t.o.Logger.Debug("sqs: received", "queue", r.queue, "n", len(msgs), "err", err)
	if rx.closed {
		// The channel closed meanwhile: give the messages back at once.
		s.release(r.queue, msgs)
		return
	}
	switch {
	case err != nil && !r.stopped:
		s.c.t.o.Logger.Warn("sqs: receive failed", "queue", r.queue, "err", err)
		if isNoQueue(err) {
			s.cl().forget(r.queue)
		}
		s.pause(max(s.c.t.o.PollingInterval, time.Second))
		return
	case len(msgs) == 0:
		rx.empty++
		if rx.empty >= len(rx.queues) && s.c.t.o.PollingInterval > 0 {
			rx.empty = 0
			s.pause(s.c.t.o.PollingInterval)
			return
		}
	default:
		rx.empty = 0
		for i := range msgs {
			s.ch.Deliver(r.queue, toMessage(&msgs[i]))
		}
	}
	s.poll()
}

// pause sleeps d on a hub timer, then polls.
func (s *store) pause(d time.Duration) {
	s.rx.sleep = s.c.h.CallLater(d, func() {
		s.rx.sleep = nil
		s.poll()
	})
}

// release makes received messages visible again at once.
func (s *store) release(queue string, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	vis := make([]handle, len(msgs))
	for i := range msgs {
		vis[i] = handle{queue: queue, receipt: aws.ToString(msgs[i].ReceiptHandle)}
	}
	s.c.exec.do(func(ctx context.Context) { s.c.settle(ctx, nil, vis) })
}

// settle runs on the executor: DeleteMessageBatch per queue for del (10
// entries a call), ChangeMessageVisibility 0 for each of vis. Failures are
// logged: an acknowledgement that did not reach SQS leaves the message to
// come back after its visibility timeout, which is SQS's at-least-once.
func (c *Conn) settle(ctx context.Context, del, vis []handle) {
	log := c.t.o.Logger
	cl := c.cl
	for len(del) > 0 {
		q := del[0].queue
		var entries []types.DeleteMessageBatchRequestEntry
		rest := del[:0]
		for _, h := range del {
			if h.queue == q && len(entries) < maxReceive {
				entries = append(entries, types.DeleteMessageBatchRequestEntry{
					Id: aws.String(strconv.Itoa(len(entries))), ReceiptHandle: aws.String(h.receipt),
				})
			} else {
				rest = append(rest, h)
			}
		}
		del = rest
		u, err := cl.url(ctx, q, false)
		if err != nil {
			log.Error("sqs: ack failed", "queue", q, "n", len(entries), "err", err)
			continue
		}
		out, err := cl.sdk(cl.canonical(q)).DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{
			QueueUrl: aws.String(u), Entries: entries,
		})
		if err != nil {
			log.Error("sqs: ack failed", "queue", q, "n", len(entries), "err", wrap("delete message batch", err))
			continue
		}
		for _, f := range out.Failed {
			log.Error("sqs: ack failed", "queue", q, "code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
		}
	}
	for _, h := range vis {
		u, err := cl.url(ctx, h.queue, false)
		if err == nil {
			_, err = cl.sdk(cl.canonical(h.queue)).ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(u), ReceiptHandle: aws.String(h.receipt), VisibilityTimeout: 0,
			})
			err = wrap("change message visibility", err)
		}
		if err != nil {
			log.Error("sqs: requeue failed: the message comes back after its visibility timeout",
				"queue", h.queue, "err", err)
		}
	}
}
