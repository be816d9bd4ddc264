package sqs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kombu-go/kombu/transport"
)

// client holds the SDK clients of a transport (one, plus one per
// predefined queue with credentials of its own) and the cache of queue
// URLs, Kombu's _queue_cache. Safe for concurrent use: the SDK clients are,
// and the cache is guarded by mu.
type client struct {
	o       *Options
	http    *http.Client
	def     *awssqs.Client
	perName map[string]*awssqs.Client // predefined queues with own credentials or region

	mu   sync.Mutex
	urls map[string]string // canonical (SQS) name -> queue URL
}

// newClient returns the clients of one connection, over an HTTP client of
// its own (closed with the connection, so that no keep-alive goroutine
// outlives it).
func newClient(o *Options) *client {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	c := &client{o: o, http: hc, urls: make(map[string]string)}
	c.def = sdkClient(o, hc, o.Region, o.AccessKeyID, o.SecretAccessKey, o.SessionToken)
	for name, q := range o.PredefinedQueues {
		c.urls[name] = q.URL
		if q.AccessKeyID == "" && q.Region == "" {
			continue
		}
		if c.perName == nil {
			c.perName = make(map[string]*awssqs.Client)
		}
		region, key, secret, token := o.Region, o.AccessKeyID, o.SecretAccessKey, o.SessionToken
		if q.Region != "" {
			region = q.Region
		}
		if q.AccessKeyID != "" {
			key, secret, token = q.AccessKeyID, q.SecretAccessKey, ""
		}
		c.perName[name] = sdkClient(o, hc, region, key, secret, token)
	}
	return c
}

func sdkClient(o *Options, hc *http.Client, region, key, secret, token string) *awssqs.Client {
	opts := awssqs.Options{
		Region:     region,
		HTTPClient: bufferedClient{hc},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret, SessionToken: token,
				Source: "kombu-go sqs options"}, nil
		}),
	}
	if o.EndpointURL != "" {
		opts.BaseEndpoint = aws.String(o.EndpointURL)
	}
	return awssqs.New(opts)
}

// bufferedClient hands the HTTP transport a request body of its own,
// read into memory first. The SDK closes its request body stream when the
// response arrives; if net/http's write loop is still finishing the
// request then, it fails and closes the connection under the response
// being read ("use of closed network connection" with status 200,
// aws/aws-sdk-go-v2#2737). For ReceiveMessage that is worse than an
// error: the messages SQS handed out are hidden for a visibility timeout.
// SQS requests are small (a message is at most 256 KiB).
type bufferedClient struct{ c *http.Client }

func (b bufferedClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		data, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		req.ContentLength = int64(len(data))
	}
	return b.c.Do(req)
}

// close releases the HTTP client's idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// sdk returns the SDK client for a canonical queue name.
func (c *client) sdk(name string) *awssqs.Client {
	if x := c.perName[name]; x != nil {
		return x
	}
	return c.def
}

// canonical is Kombu's canonical_queue_name: prefix, then entity_name.
func (c *client) canonical(queue string) string {
	return EntityName(c.o.QueueNamePrefix + queue)
}

// url returns the URL of a queue, from the cache or GetQueueUrl; with
// create, a missing queue is created (Kombu's _new_queue) with
// VisibilityTimeout, FifoQueue for ".fifo" names, and the
// sqs-creation-attributes. It fails with an error matching
// transport.ErrNotFound when the queue does not exist and create is off, or
// when predefined queues are configured and the queue is not one of them.
func (c *client) url(ctx context.Context, queue string, create bool) (string, error) {
	name := c.canonical(queue)
	c.mu.Lock()
	u, ok := c.urls[name]
	c.mu.Unlock()
	if ok {
		return u, nil
	}
	if c.o.PredefinedQueues != nil {
		return "", fmt.Errorf("sqs: queue with name %q must be defined in predefined_queues: %w", name, transport.ErrNotFound)
	}
	out, err := c.def.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	switch {
	case err == nil:
		u = aws.ToString(out.QueueUrl)
	case isNoQueue(err) && create:
		attrs := map[string]string{
			"VisibilityTimeout": strconv.Itoa(int(c.o.VisibilityTimeout.Seconds())),
		}
		if isFIFO(name) {
			attrs["FifoQueue"] = "true"
		}
		for k, v := range c.o.CreationAttributes {
			attrs[k] = v
		}
		cr, err := c.def.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		if err != nil {
			return "", wrap("create queue "+name, err)
		}
		u = aws.ToString(cr.QueueUrl)
	default:
		return "", wrap("get queue url "+name, err)
	}
	c.mu.Lock()
	c.urls[name] = u
	c.mu.Unlock()
	return u, nil
}

// forget drops a cached URL (the queue was deleted, or the server lost
// it), unless the queue is predefined.
func (c *client) forget(queue string) {
	name := c.canonical(queue)
	if _, ok := c.o.PredefinedQueues[name]; ok {
		return
	}
	c.mu.Lock()
	delete(c.urls, name)
	c.mu.Unlock()
}

// size is Kombu's _size: ApproximateNumberOfMessages.
func (c *client) size(ctx context.Context, queue, u string) (int, error) {
	out, err := c.sdk(c.canonical(queue)).GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(u),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return 0, wrap("get queue attributes", err)
	}
	s := out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)]
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("sqs: ApproximateNumberOfMessages %q: %w", s, err)
	}
	return n, nil
}

// isNoQueue reports SQS's "queue does not exist" error, in the forms SQS
// (query and JSON protocols) and the emulators write it.
func isNoQueue(err error) bool {
	var nq *types.QueueDoesNotExist
	if errors.As(err, &nq) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue":
			return true
		}
	}
	return false
}

// isConnErr reports a failure to reach the endpoint (as opposed to an
// error the service answered with).
func isConnErr(err error) bool {
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// wrap gives an SDK error the transport's meaning: a connection error for
// an unreachable endpoint, transport.ErrNotFound for a missing queue.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqs: %s: %w", op, err)
	}
	if isConnErr(err) {
		return &transport.BrokerError{Kind: transport.KindConnection, Reason: "sqs: " + op, Err: err}
	}
	if isNoQueue(err) {
		return fmt.Errorf("sqs: %s: %w: %w", op, transport.ErrNotFound, err)
	}
	return fmt.Errorf("sqs: %s: %w", op, err)
}

// list is ListQueues with a name prefix; the URLs found fill the cache
// (Kombu's _update_queue_cache), and their names are returned.
func (c *client) list(ctx context.Context, prefix string) ([]string, error) {
	in := &awssqs.ListQueuesInput{}
	if prefix != "" {
		in.QueueNamePrefix = aws.String(prefix)
	}
	var names []string
	for {
		out, err := c.def.ListQueues(ctx, in)
		if err != nil {
			return names, wrap("list queues", err)
		}
		c.mu.Lock()
		for _, u := range out.QueueUrls {
			name := u[strings.LastIndexByte(u, '/')+1:]
			c.urls[name] = u
			names = append(names, name)
		}
		c.mu.Unlock()
		if out.NextToken == nil || *out.NextToken == "" {
			return names, nil
		}
		in.NextToken = out.NextToken
	}
}
