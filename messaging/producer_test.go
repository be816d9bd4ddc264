package messaging_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

func newProducer(t *testing.T, b *fakeBroker, opts messaging.ProducerOptions) (*messaging.Producer, *messaging.Connection) {
	t.Helper()
	c, _ := newFake(t, "fake://a", b, nil)
	p, err := messaging.NewProducer(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// Kombu test case 66 (test_prepare_compression).
func TestPrepareCompression(t *testing.T) {
	b := &fakeBroker{}
	p, _ := newProducer(t, b, messaging.ProducerOptions{})
	m, _, _, err := p.Prepare(map[string]any{"the quick brown fox": "jumps over the lazy dog"},
		messaging.PublishOptions{Compression: "gzip", Headers: map[string]any{"h1": "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Headers["compression"] != "application/x-gzip" || m.Headers["h1"] != "v1" {
		t.Errorf("headers %v", m.Headers)
	}
	if m.ContentType != "application/json" {
		t.Errorf("content type %q: it stays the serializer's", m.ContentType)
	}
	r, err := zlib.NewReader(bytes.NewReader(m.Body))
	if err != nil {
		t.Fatalf("not zlib: %v", err)
	}
	raw, _ := io.ReadAll(r)
	var v map[string]string
	if err := json.Unmarshal(raw, &v); err != nil || v["the quick brown fox"] != "jumps over the lazy dog" {
		t.Errorf("decompressed %q: %v", raw, err)
	}
}

// Kombu test case 67 (test_prepare_custom_content_type) and the rest of
// _prepare.
func TestPrepareContentType(t *testing.T) {
	p, _ := newProducer(t, &fakeBroker{}, messaging.ProducerOptions{})
	tests := []struct {
		body     any
		opts     messaging.PublishOptions
		ct, enc  string
		wantBody string
	}{
		{[]byte("the foo"), messaging.PublishOptions{ContentType: "custom"}, "custom", "binary", "the foo"},
		{[]byte("the foo"), messaging.PublishOptions{ContentType: "custom", ContentEncoding: "alien"}, "custom", "alien", "the foo"},
		{"the foo", messaging.PublishOptions{ContentType: "text/plain"}, "text/plain", "utf-8", "the foo"},
		// No serializer: bytes are application/data, strings text/plain.
		{[]byte{0xff, 0}, messaging.PublishOptions{}, "application/data", "binary", "\xff\x00"},
		{"héllo", messaging.PublishOptions{}, "text/plain", "utf-8", "héllo"},
		{map[string]any{"a": 1}, messaging.PublishOptions{}, "application/json", "utf-8", `{"a":1}`},
		{"héllo", messaging.PublishOptions{Serializer: "json"}, "application/json", "utf-8", `"héllo"`},
		{"raw", messaging.PublishOptions{Serializer: "raw"}, "application/data", "utf-8", "raw"},
	}
	for _, tt := range tests {
		m, _, _, err := p.Prepare(tt.body, tt.opts)
		if err != nil {
			t.Errorf("%v: %v", tt.body, err)
			continue
		}
		if m.ContentType != tt.ct || m.ContentEncoding != tt.enc || string(m.Body) != tt.wantBody {
			t.Errorf("%v %+v: got %q %q %q, want %q %q %q", tt.body, tt.opts, m.ContentType, m.ContentEncoding, m.Body,
				tt.ct, tt.enc, tt.wantBody)
		}
	}
	if _, _, _, err := p.Prepare(42, messaging.PublishOptions{ContentType: "custom"}); !errors.Is(err, messaging.ErrEncode) {
		t.Errorf("an int with ContentType: %v", err)
	}
	if _, _, _, err := p.Prepare(1, messaging.PublishOptions{Serializer: "nope"}); !errors.Is(err, messaging.ErrNotInstalled) {
		t.Errorf("unknown serializer: %v", err)
	}
	if _, err := messaging.NewProducer(p.Connection(), messaging.ProducerOptions{Serializer: "nope"}); !errors.Is(err, messaging.ErrNotInstalled) {
		t.Errorf("NewProducer with an unknown serializer: %v", err)
	}
	if _, err := messaging.NewProducer(p.Connection(), messaging.ProducerOptions{Compression: "lz4"}); err == nil {
		t.Error("NewProducer with an unknown compression")
	}
}

// Kombu test case 68 (test_publish_with_expiration) and the properties.
func TestPrepareProperties(t *testing.T) {
	p, _ := newProducer(t, &fakeBroker{}, messaging.ProducerOptions{
		Exchange: messaging.Exchange{Name: "ex", DeliveryMode: messaging.Transient}, RoutingKey: "rk"})
	ts := time.Unix(1700000000, 0)
	m, ex, rk, err := p.Prepare("x", messaging.PublishOptions{Expiration: 10 * time.Second, Priority: 3,
		CorrelationID: "cid", ReplyTo: "replies", MessageID: "mid", Type: "t", AppID: "app", UserID: "u",
		Timestamp: ts, Properties: map[string]any{"custom": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	want := transport.Properties{CorrelationID: "cid", ReplyTo: "replies", MessageID: "mid", Type: "t", AppID: "app",
		UserID: "u", Timestamp: ts, DeliveryMode: 1, Expiration: "10000", Priority: 3, Extra: map[string]any{"custom": "v"}}
	if !reflect.DeepEqual(m.Properties, want) {
		t.Errorf("properties\n got %+v\nwant %+v", m.Properties, want)
	}
	if ex != "ex" || rk != "rk" {
		t.Errorf("exchange %q routing key %q", ex, rk)
	}
	// Overrides, and the default delivery mode (persistent).
	other := messaging.Exchange{Name: "other"}
	m, ex, rk, _ = p.Prepare("x", messaging.PublishOptions{Exchange: &other, RoutingKey: "k2", Expiration: 1500 * time.Microsecond})
	if ex != "other" || rk != "k2" || m.Properties.DeliveryMode != 2 || m.Properties.Expiration != "1" {
		t.Errorf("overrides: %q %q %+v", ex, rk, m.Properties)
	}
	m, _, _, _ = p.Prepare("x", messaging.PublishOptions{DeliveryMode: messaging.Persistent})
	if m.Properties.DeliveryMode != 2 {
		t.Errorf("explicit persistent: %d", m.Properties.DeliveryMode)
	}
}

// Kombu test case 69 (test_publish_retry_policy), inverted: Kombu copies
// the policy into connection.transport_options; this port does not.
func TestPublishRetryPolicyLeavesOptions(t *testing.T) {
	b := &fakeBroker{}
	p, c := newProducer(t, b, messaging.ProducerOptions{})
	before := c.Info().TransportOptions
	if err := p.Publish(context.Background(), "x", messaging.PublishOptions{Retry: true,
		RetryPolicy: messaging.RetryPolicy{MaxRetries: 20}}); err != nil {
		t.Fatal(err)
	}
	if after := c.Info().TransportOptions; !reflect.DeepEqual(before, after) {
		t.Errorf("transport options changed: %v -> %v", before, after)
	}
}

func TestPublishDeclares(t *testing.T) {
	b := &fakeBroker{}
	p, _ := newProducer(t, b, messaging.ProducerOptions{Exchange: messaging.NewExchange("media", "")})
	q := messaging.NewQueue("video", messaging.NewExchange("media", ""), "video")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := p.Publish(ctx, i, messaging.PublishOptions{RoutingKey: "video", Declare: []messaging.Declaration{q}}); err != nil {
			t.Fatal(err)
		}
	}
	// Each entity once, in Kombu's order: the queue (which declares its
	// exchange and binding without caching the exchange), then the
	// producer's exchange; nothing after the first publish.
	want := []string{"exchange media", "queue video", "bind video media video", "exchange media"}
	if !reflect.DeepEqual(b.declared, want) {
		t.Errorf("declared %q, want %q", b.declared, want)
	}
	if len(b.published) != 3 || b.published[2].DeliveryInfo.Exchange != "media" || b.published[2].DeliveryInfo.RoutingKey != "video" {
		t.Errorf("published %d", len(b.published))
	}
	// NoDeclare.
	b2 := &fakeBroker{}
	p2, _ := newProducer(t, b2, messaging.ProducerOptions{Exchange: messaging.NewExchange("media", ""), NoDeclare: true})
	if err := p2.Publish(ctx, 1, messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(b2.declared) != 0 {
		t.Errorf("NoDeclare declared %q", b2.declared)
	}
}

func TestPublishBatch(t *testing.T) {
	b := &fakeBroker{}
	p, _ := newProducer(t, b, messaging.ProducerOptions{Exchange: messaging.NewExchange("e", "")})
	msgs := []messaging.BatchMessage{{Body: 1, Options: messaging.PublishOptions{RoutingKey: "a"}},
		{Body: "two", Options: messaging.PublishOptions{RoutingKey: "b", Compression: "zlib"}}}
	if err := p.PublishBatch(context.Background(), msgs, messaging.BatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(b.published) != 2 || b.published[1].DeliveryInfo.RoutingKey != "b" || b.published[1].Headers["compression"] != "application/x-gzip" {
		t.Errorf("published %+v", b.published)
	}
	if !reflect.DeepEqual(b.declared, []string{"exchange e"}) {
		t.Errorf("declared %q", b.declared)
	}
	if err := p.PublishBatch(context.Background(), []messaging.BatchMessage{{Body: 1, Options: messaging.PublishOptions{Serializer: "nope"}}},
		messaging.BatchOptions{}); !errors.Is(err, messaging.ErrNotInstalled) {
		t.Errorf("bad message: %v", err)
	}
	// Retry across a broken connection.
	b2 := &fakeBroker{publishFail: 1}
	p2, _ := newProducer(t, b2, messaging.ProducerOptions{})
	if err := p2.PublishBatch(context.Background(), msgs, messaging.BatchOptions{Retry: true}); err != nil {
		t.Fatal(err)
	}
	if len(b2.published) != 2 {
		t.Errorf("after retry %d published", len(b2.published))
	}
}

// Publishers with Retry on many goroutines while the connection breaks
// under them: every message gets through, and nothing races (-race).
func TestPublishRetryConcurrent(t *testing.T) {
	b := &fakeBroker{publishFail: 5}
	c, _ := newFake(t, "fake://a;fake://b", b, nil)
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: "q"})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := p.Publish(ctx, j, messaging.PublishOptions{Retry: true}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.published) != 160 {
		t.Errorf("%d published, want 160", len(b.published))
	}
}
