package sqs

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// store is the channel.Store of one SQS channel. Its request methods run
// on the caller's goroutine and call SQS there; its consumer side
// (Consuming, Resume, Settle, Close) runs on the hub and hands every SQS
// call to the connection's executor or receiver goroutine (recv.go).
type store struct {
	c  *Conn
	ch *channel.Channel

	// Hub-owned consumer state (recv.go).
	rx receiver
	// closed is set with rx.closed, for the receiver goroutine.
	closed atomic.Bool
}

var (
	_ channel.Store       = (*store)(nil)
	_ channel.NoAckTaker  = (*store)(nil)
	_ channel.CloseWaiter = (*store)(nil)
)

func (s *store) cl() *client { return s.c.cl }

// NewQueue is Kombu's _new_queue: the queue's URL from the cache or SQS,
// the queue created when missing (not with predefined queues).
func (s *store) NewQueue(ctx context.Context, q transport.Queue) error {
	_, err := s.cl().url(ctx, q.Name, true)
	return err
}

// HasQueue reports whether SQS knows the queue (GetQueueUrl).
func (s *store) HasQueue(ctx context.Context, queue string) (bool, error) {
	_, err := s.cl().url(ctx, queue, false)
	if errors.Is(err, transport.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Size is Kombu's _size: ApproximateNumberOfMessages (0 for a missing
// queue).
func (s *store) Size(ctx context.Context, queue string) (int, error) {
	u, err := s.existing(ctx, queue)
	if u == "" {
		return 0, err
	}
	return s.cl().size(ctx, queue, u)
}

// existing returns the URL of a queue SQS knows, or "" (with a nil error
// when the queue does not exist).
func (s *store) existing(ctx context.Context, queue string) (string, error) {
	u, err := s.cl().url(ctx, queue, false)
	if errors.Is(err, transport.ErrNotFound) {
		return "", nil
	}
	return u, err
}

// Purge is Kombu's _purge: the size, then PurgeQueue. (SQS allows one
// PurgeQueue per queue every 60 seconds.)
func (s *store) Purge(ctx context.Context, queue string) (int, error) {
	u, err := s.existing(ctx, queue)
	if u == "" {
		return 0, err
	}
	n, err := s.cl().size(ctx, queue, u)
	if err != nil {
		return 0, err
	}
	if _, err := s.cl().sdk(s.cl().canonical(queue)).PurgeQueue(ctx, &awssqs.PurgeQueueInput{QueueUrl: aws.String(u)}); err != nil {
		return 0, wrap("purge queue", err)
	}
	return n, nil
}

// DeleteQueue is Kombu's _delete: nothing with predefined queues, else
// DeleteQueue and the URL forgotten.
func (s *store) DeleteQueue(ctx context.Context, queue string, _ []channel.Binding, _ bool) (int, error) {
	if s.c.t.o.PredefinedQueues != nil {
		return 0, nil
	}
	u, err := s.existing(ctx, queue)
	if u == "" {
		return 0, err
	}
	n, err := s.cl().size(ctx, queue, u)
	if err != nil && !errors.Is(err, transport.ErrNotFound) {
		return 0, err
	}
	_, err = s.cl().def.DeleteQueue(ctx, deleteInput(u))
	s.cl().forget(queue)
	if err != nil && !isNoQueue(err) {
		return 0, wrap("delete queue", err)
	}
	return n, nil
}

// Table is the process-local binding table: Kombu's SQS channel keeps
// exchanges and bindings in its in-memory state.
func (s *store) Table(_ context.Context, exchange string) ([]channel.Row, error) {
	return s.c.t.o.Channel.State.Table(exchange), nil
}

// Bind records nothing on SQS: the binding lives in the process state.
func (s *store) Bind(context.Context, channel.Binding) error { return nil }

// Put is Kombu's _put: SendMessage of the (base64) envelope, with
// MessageGroupId and MessageDeduplicationId for a ".fifo" queue. A queue
// that SQS no longer knows (deleted, or an emulator restarted) is created
// again once, as Kombu's _new_queue would after a cache miss.
func (s *store) Put(ctx context.Context, queue string, m *transport.Message) error {
	body, err := encodeBody(m, s.c.t.o.Base64)
	if err != nil {
		return err
	}
	in := &awssqs.SendMessageInput{MessageBody: aws.String(body)}
	if isFIFO(queue) {
		g, d := fifoIDs(m)
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(g), aws.String(d)
	}
	for try := 0; ; try++ {
		u, err := s.cl().url(ctx, queue, true)
		if err != nil {
			return err
		}
		in.QueueUrl = aws.String(u)
		_, err = s.cl().sdk(s.cl().canonical(queue)).SendMessage(ctx, in)
		if err != nil && isNoQueue(err) && try == 0 {
			s.cl().forget(queue)
			continue
		}
		return wrap("send message", err)
	}
}

// PutFanout stores a copy in every queue bound to the exchange in this
// process's state. (Kombu's SQS channel has supports_fanout off, and its
// fanout exchange then delivers nothing; see the package documentation.)
func (s *store) PutFanout(ctx context.Context, exchange, routingKey string, m *transport.Message) (int, error) {
	var buf [8]string
	queues := channel.Lookup(transport.Fanout, s.c.t.o.Channel.State.Table(exchange), routingKey, nil, "", buf[:0])
	for i, q := range queues {
		if err := s.Put(ctx, q, m); err != nil {
			return i, err
		}
	}
	return len(queues), nil
}

// Get is basic_get: one ReceiveMessage of at most one message, without a
// long poll (a Get answers at once; Kombu's _get waits wait_time_seconds).
// With noAck the message is deleted before Get returns.
func (s *store) Get(ctx context.Context, queue string, noAck bool) (*transport.Message, error) {
	u, err := s.cl().url(ctx, queue, false)
	if errors.Is(err, transport.ErrNotFound) {
		return nil, transport.ErrEmpty
	}
	if err != nil {
		return nil, err
	}
	sdk := s.cl().sdk(s.cl().canonical(queue))
	out, err := sdk.ReceiveMessage(ctx, receiveInput(u, 1, 0))
	if err != nil {
		return nil, wrap("receive message", err)
	}
	if len(out.Messages) == 0 {
		return nil, transport.ErrEmpty
	}
	m := toMessage(&out.Messages[0])
	if noAck {
		if _, err := sdk.DeleteMessage(ctx, &awssqs.DeleteMessageInput{
			QueueUrl: aws.String(u), ReceiptHandle: out.Messages[0].ReceiptHandle,
		}); err != nil {
			return nil, wrap("delete message", err)
		}
	}
	return m, nil
}

// receiveInput is the ReceiveMessage request of both the consumer and
// Get: ApproximateReceiveCount is asked for, to mark redeliveries.
func receiveInput(u string, max, wait int) *awssqs.ReceiveMessageInput {
	return &awssqs.ReceiveMessageInput{
		QueueUrl:            aws.String(u),
		MaxNumberOfMessages: int32(max),
		WaitTimeSeconds:     int32(wait),
		AttributeNames:      []types.QueueAttributeName{"ApproximateReceiveCount"},
	}
}

// toMessage decodes a received SQS message. Its delivery tag is the
// receipt handle, as Kombu sets delivery_tag to ReceiptHandle; it is
// marked redelivered when the envelope says so or SQS has handed it out
// before (ApproximateReceiveCount > 1).
func toMessage(sm *types.Message) *transport.Message {
	m := decodeBody(aws.ToString(sm.Body))
	m.DeliveryInfo.DeliveryTag = aws.ToString(sm.ReceiptHandle)
	if n := sm.Attributes["ApproximateReceiveCount"]; n != "" && n != "0" && n != "1" {
		m.DeliveryInfo.Redelivered = true
	}
	return m
}

// Settle hands acknowledgements and requeues to the executor: an ack or a
// drop is DeleteMessage (batched by queue, 10 a call), a requeue or a
// restore is ChangeMessageVisibility to 0, as Kombu's reject and restore
// end in. A tag this channel does not hold is ignored: SQS needs the queue
// of a receipt handle.
func (s *store) Settle(batch []channel.Settlement) error {
	var del, vis []handle
	for i := range batch {
		st := &batch[i]
		if st.Message == nil {
			continue
		}
		h := handle{queue: st.Message.DeliveryInfo.Queue, receipt: st.Tag}
		switch st.Op {
		case channel.OpAck, channel.OpDrop:
			del = append(del, h)
		case channel.OpRequeue, channel.OpRestore:
			vis = append(vis, h)
		}
	}
	if len(del) == 0 && len(vis) == 0 {
		return nil
	}
	if !s.c.exec.do(func(ctx context.Context) { s.c.settle(ctx, del, vis) }) {
		return fmt.Errorf("sqs: settle: %w", transport.ErrClosed)
	}
	return nil
}

// TakenNoAck deletes a message handed to a no-ack consumer, as Kombu's
// _message_to_python does for its no-ack queues.
func (s *store) TakenNoAck(m *transport.Message) {
	h := handle{queue: m.DeliveryInfo.Queue, receipt: m.DeliveryInfo.DeliveryTag}
	s.c.exec.do(func(ctx context.Context) { s.c.settle(ctx, []handle{h}, nil) })
}

// WaitClose waits for the executor to finish the settlements this
// channel queued (its restores on close included).
func (s *store) WaitClose() error {
	return s.c.exec.barrier(context.Background())
}

func deleteInput(u string) *awssqs.DeleteQueueInput {
	return &awssqs.DeleteQueueInput{QueueUrl: aws.String(u)}
}
