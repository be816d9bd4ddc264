package sqs

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

// goawsConn adapts two divergences of the emulator from SQS that the
// conformance suite runs into; everything else goes to the transport
// unchanged.
//
//   - goaws (v0.4.5) counts in-flight messages in
//     ApproximateNumberOfMessages, which on SQS counts only the messages
//     available for retrieval. A passive DeclareQueue answers
//     ApproximateNumberOfMessages - ApproximateNumberOfMessagesNotVisible,
//     both read from the emulator.
//   - goaws deadlocks (a nil dereference while it holds its queues' lock)
//     when a queue is deleted during the last 100 ms of a long poll on it.
//     DeleteQueue first waits for the receives this connection has in
//     flight (the suite's channels are closed by then).
type goawsConn struct {
	*Conn
}

func (c goawsConn) Channel(ctx context.Context) (transport.Channel, error) {
	ch, err := c.Conn.Channel(ctx)
	if err != nil {
		return nil, err
	}
	return goawsChannel{ch.(*Channel)}, nil
}

type goawsChannel struct {
	*Channel
}

func (ch goawsChannel) DeclareQueue(ctx context.Context, q transport.Queue) (transport.QueueInfo, error) {
	info, err := ch.Channel.DeclareQueue(ctx, q)
	if err != nil || !q.Passive {
		return info, err
	}
	cl := ch.conn.cl
	u, err := cl.url(ctx, q.Name, false)
	if err != nil {
		return info, err
	}
	out, err := cl.def.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(u),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		return info, err
	}
	hidden, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	info.Messages -= hidden
	return info, nil
}

func (ch goawsChannel) DeleteQueue(ctx context.Context, name string, ifUnused, ifEmpty bool) (int, error) {
	if err := ch.conn.recv.barrier(ctx); err != nil {
		return 0, err
	}
	return ch.Channel.DeleteQueue(ctx, name, ifUnused, ifEmpty)
}

// dialGoaws dials tr for the conformance suite.
func dialGoaws(tr transport.Transport, h *hub.Hub) (transport.Conn, error) {
	c, err := tr.Dial(context.Background(), h)
	if err != nil {
		return nil, err
	}
	return goawsConn{c.(*Conn)}, nil
}
