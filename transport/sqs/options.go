package sqs

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// Kombu's defaults (kombu/transport/SQS.py, Kombu 5.2.4).
const (
	// DefaultRegion is Kombu's default_region.
	DefaultRegion = "us-east-1"
	// DefaultVisibilityTimeout is Kombu's default_visibility_timeout.
	DefaultVisibilityTimeout = 1800 * time.Second
	// DefaultWaitTimeSeconds is Kombu's Channel.default_wait_time_seconds.
	DefaultWaitTimeSeconds = 10
	// DefaultPollingInterval is Kombu's Transport.polling_interval for SQS.
	DefaultPollingInterval = time.Second
	// maxReceive is SQS_MAX_MESSAGES: ReceiveMessage returns at most 10.
	maxReceive = 10
	// maxWait is the longest long poll SQS accepts.
	maxWait = 20
)

// Options configure an SQS transport. Start from [DefaultOptions] (Kombu's
// defaults); [New] reads them from a transport.Config.
type Options struct {
	// EndpointURL is the SQS endpoint ("http://127.0.0.1:4100"). Kombu
	// builds it from the URL's host and port ("sqs://k:s@host:port", http
	// unless is_secure). Default: "", the AWS endpoint of Region.
	EndpointURL string
	// AccessKeyID and SecretAccessKey are the credentials (the URL's user
	// and password, "sqs://KEY:SECRET@"; a secret with "/" must be
	// URL-quoted as in Kombu). Default: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment
	// (Kombu asks boto3's default chain, which reads them first).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Region (region). Kombu's default: the boto3 session's region
	// (AWS_DEFAULT_REGION), else "us-east-1". Ours: the same, reading
	// AWS_DEFAULT_REGION then AWS_REGION.
	Region string
	// VisibilityTimeout (visibility_timeout, seconds) is set on the queues
	// this transport creates: how long a received, unacknowledged message
	// stays invisible before SQS hands it out again. Default 1800 s.
	VisibilityTimeout time.Duration
	// WaitTimeSeconds (wait_time_seconds) is the long-poll wait of each
	// ReceiveMessage, 0..20. Default 10, as Kombu's channel.
	WaitTimeSeconds int
	// PollingInterval (polling_interval, seconds) is how long the consumer
	// sleeps, on a hub timer, after a round over every consumed queue
	// found none of them ready. Default 1 s, as Kombu's SQS transport.
	PollingInterval time.Duration
	// QueueNamePrefix (queue_name_prefix) is put before every queue name
	// before it is mangled into an SQS name. Default "".
	QueueNamePrefix string
	// PredefinedQueues (predefined_queues) maps queue names to existing
	// SQS queues; when set, no queue is created, listed or deleted, and a
	// queue missing from the map is an error, as in Kombu.
	PredefinedQueues map[string]PredefinedQueue
	// CreationAttributes (sqs-creation-attributes) are extra attributes
	// for CreateQueue ("KmsMasterKeyId": "alias/aws/sqs").
	CreationAttributes map[string]string
	// Base64 (sqs_base64_encoding) writes message bodies as base64 of the
	// JSON envelope, as Kombu does by default. Default true. Reading
	// accepts both forms, as Kombu's _optional_b64_decode does.
	Base64 bool
	// Channel holds the virtual channel's options (deadletter_queue,
	// restore_on_close).
	Channel channel.Options
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// DefaultOptions returns Kombu's defaults: visibility timeout 1800 s, long
// polls of 10 s, polling interval 1 s, base64 bodies. Region and
// credentials are left empty: NewWithOptions takes them from the
// environment.
func DefaultOptions() Options {
	return Options{
		VisibilityTimeout: DefaultVisibilityTimeout,
		WaitTimeSeconds:   DefaultWaitTimeSeconds,
		PollingInterval:   DefaultPollingInterval,
		Base64:            true,
	}
}

// PredefinedQueue is one entry of Kombu's predefined_queues.
type PredefinedQueue struct {
	// URL is the queue URL (url). Required. Its name ends with .fifo when,
	// and only when, the key does.
	URL string
	// AccessKeyID, SecretAccessKey (access_key_id, secret_access_key)
	// override the connection's credentials for this queue.
	AccessKeyID     string
	SecretAccessKey string
	// Region (region) overrides the connection's region for this queue.
	Region string
}

// ParseConfig reads a transport.Config the way Kombu's SQS channel reads
// its connection and transport_options.
func ParseConfig(cfg transport.Config) (Options, error) {
	o := DefaultOptions()
	o.AccessKeyID, o.SecretAccessKey, o.Logger = cfg.UserID, cfg.Password, cfg.Logger
	r := optmap.New("sqs", cfg.Options)
	r.String("region", &o.Region)
	r.Seconds("visibility_timeout", &o.VisibilityTimeout)
	r.Int("wait_time_seconds", &o.WaitTimeSeconds)
	r.Seconds("polling_interval", &o.PollingInterval)
	r.String("queue_name_prefix", &o.QueueNamePrefix)
	r.Bool("sqs_base64_encoding", &o.Base64)
	var secure bool
	haveSecure := r.Bool("is_secure", &secure)
	// Kombu reads "port" into a property it never uses (the endpoint takes
	// the URL's port); accepted for compatibility, without effect.
	r.Known("port")
	// The virtual channel's own options.
	r.String("deadletter_queue", &o.Channel.DeadLetterQueue)
	restore := !o.Channel.NoRestoreOnClose
	r.Bool("restore_on_close", &restore)
	o.Channel.NoRestoreOnClose = !restore
	r.Always("confirm_publish", true, "a publish returns once SQS has stored the message: only true")
	r.ConnectionKeys()
	if m, ok := r.Map("sqs-creation-attributes"); ok {
		o.CreationAttributes = make(map[string]string, len(m))
		for k, v := range m {
			o.CreationAttributes[k] = attrString(v)
		}
	}
	if m, ok := r.Map("predefined_queues"); ok {
		pq, err := parsePredefined(m)
		if err != nil {
			r.Fail("predefined_queues", m, err.Error())
		}
		o.PredefinedQueues = pq
	}
	for _, k := range []string{"sts_role_arn", "sts_token_timeout", "client-config", "regioninfo"} {
		if r.Has(k) {
			v, _ := r.Lookup(k)
			r.Fail(k, v, "not supported by this Go port (Kombu: boto3/STS specific)")
		}
	}
	if err := r.Err(); err != nil {
		return o, err
	}
	if cfg.Hostname != "" {
		scheme := "http"
		if haveSecure && secure {
			scheme = "https"
		}
		o.EndpointURL = scheme + "://" + cfg.Hostname
		if cfg.Port != 0 {
			o.EndpointURL += ":" + strconv.Itoa(cfg.Port)
		}
	}
	return o, nil
}

// parsePredefined reads predefined_queues: name -> {url, access_key_id,
// secret_access_key, region}. Kombu's backoff_policy and backoff_tasks are
// refused: this port does not apply them.
func parsePredefined(m map[string]any) (map[string]PredefinedQueue, error) {
	out := make(map[string]PredefinedQueue, len(m))
	for name, v := range m {
		e, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("queue %q: want a map, got %T", name, v)
		}
		var q PredefinedQueue
		for k, x := range e {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("queue %q: %s: want a string, got %T", name, k, x)
			}
			switch k {
			case "url":
				q.URL = s
			case "access_key_id":
				q.AccessKeyID = s
			case "secret_access_key":
				q.SecretAccessKey = s
			case "region":
				q.Region = s
			default:
				return nil, fmt.Errorf("queue %q: unknown or unsupported key %q (valid: url, access_key_id, secret_access_key, region)", name, k)
			}
		}
		out[name] = q
	}
	return out, nil
}

// attrString renders a queue attribute value as SQS wants it (a string).
func attrString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// normalize fills defaults from the environment and checks the options.
func (o *Options) normalize() error {
	if o.Region == "" {
		o.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if o.Region == "" {
		o.Region = os.Getenv("AWS_REGION")
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.AccessKeyID == "" && o.SecretAccessKey == "" {
		o.AccessKeyID = os.Getenv("AWS_ACCESS_KEY_ID")
		o.SecretAccessKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		o.SessionToken = os.Getenv("AWS_SESSION_TOKEN")
	}
	if o.WaitTimeSeconds < 0 || o.WaitTimeSeconds > maxWait {
		return &transport.OptionError{Transport: "sqs", Key: "wait_time_seconds", Value: o.WaitTimeSeconds,
			Reason: "want 0..20 (SQS's limit for long polling)"}
	}
	if o.VisibilityTimeout < 0 || o.VisibilityTimeout > 12*time.Hour {
		return &transport.OptionError{Transport: "sqs", Key: "visibility_timeout", Value: o.VisibilityTimeout,
			Reason: "want 0..43200 seconds (SQS's limit)"}
	}
	if o.PollingInterval < 0 {
		return &transport.OptionError{Transport: "sqs", Key: "polling_interval", Value: o.PollingInterval,
			Reason: "want a duration >= 0"}
	}
	for name, q := range o.PredefinedQueues {
		if q.URL == "" {
			return &transport.OptionError{Transport: "sqs", Key: "predefined_queues", Value: name,
				Reason: "queue " + strconv.Quote(name) + " has no url"}
		}
		// Kombu's _validate_predifined_queues.
		fifoURL := strings.HasSuffix(q.URL, ".fifo")
		fifoName := strings.HasSuffix(name, ".fifo")
		if fifoURL && !fifoName {
			return &transport.OptionError{Transport: "sqs", Key: "predefined_queues", Value: name,
				Reason: fmt.Sprintf("queue with url %q must have a name ending with .fifo", q.URL)}
		}
		if !fifoURL && fifoName {
			return &transport.OptionError{Transport: "sqs", Key: "predefined_queues", Value: name,
				Reason: fmt.Sprintf("queue with name %q is not a FIFO queue: %q", name, q.URL)}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
