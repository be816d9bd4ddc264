// Package sqs is Kombu's SQS transport (kombu.transport.SQS, Kombu 5.2.4)
// for Go: Kombu's virtual channel (package channel) over Amazon SQS, wire
// compatible with Python Kombu and Celery on the same queues.
//
// # Wire format
//
//   - Queue names: Kombu's canonical_queue_name, queue_name_prefix then
//     entity_name ([EntityName]): "." becomes "-", other ASCII punctuation
//     except "-" and "_" becomes "_", a ".fifo" suffix is kept.
//   - Bodies: the Kombu JSON envelope (package channel/envelope), base64
//     encoded unless sqs_base64_encoding is off. Reading accepts both, as
//     Kombu's _optional_b64_decode does; bytes that are not an envelope
//     are delivered with Message.Err set, never dropped.
//   - FIFO queues (name ends with ".fifo"): created with FifoQueue=true;
//     MessageGroupId and MessageDeduplicationId come from the message
//     properties of those names, else "default" and a new uuid4, as in
//     Kombu's _put.
//   - Delivery tags are SQS receipt handles, as Kombu sets delivery_tag to
//     ReceiptHandle. Ack and reject without requeue are DeleteMessage
//     (batched, 10 a call); reject with requeue, Recover and the restore of
//     unacknowledged messages on Close are ChangeMessageVisibility 0, the
//     call Kombu's _put makes for a redelivered message.
//   - Queues are created on declaration (GetQueueUrl, then CreateQueue with
//     VisibilityTimeout, FifoQueue and sqs-creation-attributes). With
//     predefined_queues nothing is created, listed or deleted, and another
//     queue is an error.
//   - Exchanges and bindings are process-local, as in Kombu's SQS channel
//     (it keeps them in the virtual channel's in-memory state). Beyond
//     Kombu, whose SQS fanout exchange delivers nothing (supports_fanout is
//     off), a fanout publish stores a copy in every queue bound in this
//     process.
//
// # Consuming
//
// A channel visits its consumed queues in turn. For each it asks SQS for
// up to min(prefetch room, 10) messages with a long poll of
// wait_time_seconds (Kombu's _get_bulk and _get_message_estimate); after a
// round over every queue that found nothing it sleeps polling_interval on
// a hub timer. A message is marked redelivered when its envelope says so or
// SQS reports ApproximateReceiveCount above 1.
//
// # Goroutines
//
// The SDK's calls block, so each connection has two goroutines and nothing
// per queue or per channel: the executor, which runs acknowledgements and
// requeues, and the receiver, which runs the long polls one after another.
// Both post their results to the hub. They are two so that a poll waiting
// up to wait_time_seconds never holds up an acknowledgement, which would
// otherwise keep the prefetch window full and stall the consumer. The
// request methods (declarations, Publish, Get, Purge, DeleteQueue) call SQS
// on the caller's goroutine. Close joins both goroutines.
//
// # Guarantees under failure
//
// SQS is at-least-once: a received message that is not deleted comes back
// after its visibility timeout. A consumer process that dies loses nothing:
// its unacknowledged messages reappear after visibility_timeout (1800 s by
// default). An acknowledgement that fails (endpoint down) is logged and
// the message comes back later: a duplicate, not a loss. While the endpoint
// is down, Publish fails with a connection error
// (transport.IsConnectionError) and consumers retry every
// max(polling_interval, 1 s); they resume by themselves. A receive is never
// retried by the SDK (a retried receive would hide what the failed one
// took). A long poll in flight is never cancelled, since SQS may already
// have handed out messages to it: Conn.Close waits for it (at most
// wait_time_seconds) and makes what it received visible again at once.
//
// # Errors
//
// Options errors are *transport.OptionError (unknown keys included);
// unreachable endpoints give *transport.BrokerError of kind
// KindConnection; a missing queue matches transport.ErrNotFound.
package sqs
