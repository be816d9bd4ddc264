package sqs

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/kombu-go/kombu/hub"
	"github.com/kombu-go/kombu/transport"
)

func TestOptionsDefaults(t *testing.T) {
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_REGION", "")
	tr, err := New(transport.Config{Scheme: "sqs", UserID: "KEY", Password: "SEC/RET"})
	if err != nil {
		t.Fatal(err)
	}
	o := tr.Options()
	if o.Region != "us-east-1" || o.VisibilityTimeout != 1800*time.Second || o.WaitTimeSeconds != 10 ||
		o.PollingInterval != time.Second || !o.Base64 || o.EndpointURL != "" || o.AccessKeyID != "KEY" ||
		o.SecretAccessKey != "SEC/RET" {
		t.Errorf("defaults: %+v", o)
	}
}

func TestOptionsParse(t *testing.T) {
	tr, err := New(transport.Config{Scheme: "sqs", Hostname: "127.0.0.1", Port: 4100, Options: map[string]any{
		"region": "eu-west-1", "visibility_timeout": "60", "wait_time_seconds": 20, "polling_interval": 0.5,
		"queue_name_prefix": "dev-", "sqs_base64_encoding": "false", "port": 1,
		"sqs-creation-attributes": map[string]any{"KmsMasterKeyId": "alias/aws/sqs", "DelaySeconds": 5.0},
		"predefined_queues": map[string]any{
			"q1":      map[string]any{"url": "http://h/1/q1", "access_key_id": "a", "secret_access_key": "b"},
			"q2.fifo": map[string]any{"url": "http://h/1/q2.fifo"},
		},
		"deadletter_queue": "dlq",
	}})
	if err != nil {
		t.Fatal(err)
	}
	o := tr.Options()
	if o.EndpointURL != "http://127.0.0.1:4100" || o.Region != "eu-west-1" || o.VisibilityTimeout != time.Minute ||
		o.WaitTimeSeconds != 20 || o.PollingInterval != 500*time.Millisecond || o.QueueNamePrefix != "dev-" ||
		o.Base64 || o.CreationAttributes["DelaySeconds"] != "5" || o.PredefinedQueues["q1"].AccessKeyID != "a" ||
		o.Channel.DeadLetterQueue != "dlq" {
		t.Errorf("parsed: %+v", o)
	}
	tr, err = New(transport.Config{Scheme: "sqs", Hostname: "sqs.local", Options: map[string]any{"is_secure": true}})
	if err != nil || tr.Options().EndpointURL != "https://sqs.local" {
		t.Errorf("is_secure: %v %+v", err, tr)
	}
}

func TestOptionsErrors(t *testing.T) {
	for name, opts := range map[string]map[string]any{
		"unknown":        {"no_such_option": 1},
		"wait too long":  {"wait_time_seconds": 21},
		"bad visibility": {"visibility_timeout": "soon"},
		"sts":            {"sts_role_arn": "arn:aws:iam::1:role/x"},
		"backoff":        {"predefined_queues": map[string]any{"q": map[string]any{"url": "http://h/q", "backoff_policy": "x"}}},
		"fifo name":      {"predefined_queues": map[string]any{"q": map[string]any{"url": "http://h/q.fifo"}}},
		"fifo url":       {"predefined_queues": map[string]any{"q.fifo": map[string]any{"url": "http://h/q"}}},
		"no url":         {"predefined_queues": map[string]any{"q": map[string]any{}}},
	} {
		_, err := New(transport.Config{Scheme: "sqs", Options: opts})
		var oe *transport.OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %v, want a *transport.OptionError", name, err)
		}
	}
}

func TestNewWithOptions(t *testing.T) {
	t.Setenv("AWS_DEFAULT_REGION", "ap-south-1")
	o := DefaultOptions()
	o.EndpointURL = "http://127.0.0.1:1"
	tr, err := NewWithOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Options(); got.Region != "ap-south-1" || got.WaitTimeSeconds != 10 || !got.Base64 ||
		got.Channel.State == nil || got.Logger == nil {
		t.Errorf("options: %+v", got)
	}
	o.WaitTimeSeconds = 30
	if _, err := NewWithOptions(o); err == nil {
		t.Error("wait_time_seconds 30 accepted")
	}
}

// TestDialUnreachable: Dial fails with a connection error when nothing
// answers at the endpoint (Kombu's channel creation lists the queues).
func TestDialUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	tr, err := New(transport.Config{Scheme: "sqs", Hostname: "127.0.0.1", Port: port, UserID: "k", Password: "s"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, h)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded with nothing listening")
	}
	if !transport.IsConnectionError(err) {
		t.Fatalf("Dial: %v, want a connection error", err)
	}
}
