package messaging_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/messaging/compression"
	"github.com/kombu-go/kombu/messaging/serializer"
	"github.com/kombu-go/kombu/transport"
)

// badRow is one row of the bad-input table (the README's "Bad input and
// failures" lists the same rows).
type badRow struct {
	name string
	// raw is the item pushed onto a Redis list, for rows that exist only
	// as bytes in Kombu's envelope; msg is the message, for rows any
	// transport can carry (on Redis it travels in a well-formed envelope).
	raw string
	msg *transport.Message
	// is is what the consumer's *DecodeError matches (besides ErrDecode);
	// nil means the message is good and reaches the callbacks.
	is error
	// kombu is what Kombu 5.x does with the same input.
	kombu string
}

// issueBomb is the zlib bomb of issue 10: 300 MiB of zeros at level 9,
// about 305 KB. Deflating 300 MiB takes seconds (tens under -race), so one
// MiB is deflated and its blocks, which only say "zeros", are repeated:
// each copy ends with a sync flush, on a byte boundary, and the stream ends
// with an empty final block and the Adler-32 of the zeros.
var issueBomb = sync.OnceValue(func() []byte {
	const copies, unit = 300, 1 << 20
	var blocks bytes.Buffer
	fw, _ := flate.NewWriter(&blocks, flate.BestCompression)
	fw.Write(make([]byte, unit))
	fw.Flush()
	out := []byte{0x78, 0xda} // zlib header: deflate, 32 KiB window, level 9
	out = append(out, bytes.Repeat(blocks.Bytes(), copies)...)
	out = append(out, 0x03, 0x00) // final fixed-Huffman block with only its end
	// Adler-32 of n zeros: a stays 1, b adds 1 per byte.
	return binary.BigEndian.AppendUint32(out, uint32(copies*unit%65521)<<16|1)
})

// bigJSON is a JSON document of about n bytes: one long string. It is
// built a MiB at a time, yielding between the pieces, because one large
// copy cannot be preempted and would hold up the garbage collector and,
// through it, the hub that TestHubLatencyUnderBomb measures.
func bigJSON(n int) []byte {
	piece := bytes.Repeat([]byte("0123456789"), 1<<20/10)
	out := make([]byte, 0, n+32)
	out = append(out, `{"data": "`...)
	for len(out) < n {
		out = append(out, piece[:min(len(piece), n-len(out))]...)
		runtime.Gosched()
	}
	return append(out, `"}`...)
}

// big20MB is the 20 MB message body of the tests, built once.
var big20MB = sync.OnceValue(func() []byte { return bigJSON(20 << 20) })

func badRows(t *testing.T) []badRow {
	msg := func(ct, ce string, body []byte, headers map[string]any) *transport.Message {
		return &transport.Message{Body: body, ContentType: ct, ContentEncoding: ce, Headers: headers}
	}
	jsonCT := serializer.ContentTypeJSON
	gz := func(v any) map[string]any { return map[string]any{"compression": v} }
	return []badRow{
		{name: "raw non-JSON", raw: "hello, this is not JSON", is: transport.ErrBadEnvelope,
			kombu: "JSONDecodeError raised from drain_events; the message is lost"},
		{name: "{}", raw: "{}", is: transport.ErrBadEnvelope,
			kombu: "KeyError 'properties' raised; lost"},
		{name: "JSON without Kombu's fields", raw: `{"task": "add", "args": [1, 2]}`, is: transport.ErrBadEnvelope,
			kombu: "KeyError 'properties' raised; lost"},
		{name: "no body", raw: `{"content-type": "application/json", "properties": {"delivery_tag": "bi-nobody"}}`,
			is: transport.ErrBadEnvelope, kombu: "delivered with body None"},
		{name: "no delivery_tag", raw: `{"body": "e30=", "content-type": "application/json", "properties": {"body_encoding": "base64"}}`,
			is: transport.ErrBadEnvelope, kombu: "KeyError 'delivery_tag' raised; lost"},
		{name: `priority "high"`, raw: `{"body": "e30=", "content-type": "application/json", "properties": {"priority": "high", "body_encoding": "base64", "delivery_tag": "bi-prio"}}`,
			is: transport.ErrBadEnvelope, kombu: "delivered as a good message"},
		{name: "bad base64", raw: `{"body": "e30", "content-type": "application/json", "properties": {"body_encoding": "base64", "delivery_tag": "bi-b64"}}`,
			is: transport.ErrBadEnvelope, kombu: "binascii.Error raised; lost"},
		{name: "invalid UTF-8 in the envelope", raw: "{\"body\": \"\xff\xfe\", \"properties\": {\"delivery_tag\": \"bi-utf8\"}}",
			is: transport.ErrBadEnvelope, kombu: "UnicodeDecodeError raised; lost"},
		{name: "truncated envelope", raw: `{"body": "eyJhIjog`, is: transport.ErrBadEnvelope,
			kombu: "JSONDecodeError raised; lost"},
		{name: "body not JSON", msg: msg(jsonCT, "utf-8", []byte("{not json"), nil), is: serializer.ErrDecode,
			kombu: "DecodeError to on_decode_error, or raised from drain_events (message left unacked)"},
		{name: "invalid UTF-8 JSON body", msg: msg(jsonCT, "utf-8", []byte("\xff\xfe{}"), nil), is: serializer.ErrDecode,
			kombu: "DecodeError (as above)"},
		{name: "lying content-encoding", msg: msg("text/plain", "utf-8", []byte("caf\xe9"), nil), is: serializer.ErrDecode,
			kombu: "DecodeError (as above)"},
		{name: "unknown content-encoding", msg: msg("text/plain", "klingon", []byte("qapla'"), nil), is: serializer.ErrDecode,
			kombu: "DecodeError (LookupError)"},
		{name: "lying compression header", msg: msg(jsonCT, "utf-8", []byte("not zlib at all"), gz("application/x-gzip")),
			is: compression.ErrCorrupt, kombu: "zlib.error in Message(): raised from drain_events or to on_decode_error"},
		{name: "unknown compression", msg: msg(jsonCT, "utf-8", []byte("{}"), gz("application/x-rar")),
			is: compression.ErrUnknownCodec, kombu: "KeyError in decompress (as above)"},
		{name: "compression header not a string", msg: msg(jsonCT, "utf-8", []byte("{}"), gz(int64(1))),
			is: messaging.ErrDecode, kombu: "KeyError in decompress (as above)"},
		{name: "content type not accepted (pickle)", msg: msg("application/x-python-serialize", "binary", []byte("\x80\x04K\x01."), nil),
			is: messaging.ErrContentDisallowed, kombu: "ContentDisallowed (as above)"},
		{name: "zlib bomb (305 KB to 300 MiB)", msg: msg(jsonCT, "utf-8", issueBomb(), gz("application/x-gzip")),
			is: compression.ErrTooLarge, kombu: "decompressed whole on the event loop (no limit)"},
		{name: "20 MB body", msg: msg(jsonCT, "utf-8", big20MB(), nil),
			kombu: "delivered, decoded on the event loop"},
		{name: "empty JSON body", msg: msg(jsonCT, "utf-8", nil, nil),
			kombu: "delivered with the empty body"},
	}
}

// TestBadInputTable sends every row of the bad-input table, with a good
// message before and after each, to a consumer that has an OnDecodeError
// handler: every good message and every good row reaches the callbacks,
// every bad row reaches the handler, with the bytes as received and an
// error that says what was wrong, and nothing else happens to it. Memory
// and RabbitMQ carry the rows that are messages; Redis carries them all
// (the raw ones pushed onto the list, as another client would).
func TestBadInputTable(t *testing.T) {
	rows := badRows(t)
	t.Run("memory", func(t *testing.T) {
		runBadInput(t, memConn(t), rows, nil)
	})
	eachBroker(t, func(t *testing.T, url string, conn *messaging.Connection) {
		var push func(ctx context.Context, q, raw string) error
		if strings.HasPrefix(url, "redis") {
			push = func(ctx context.Context, q, raw string) error { return redisLPush(ctx, url, q, raw) }
		}
		runBadInput(t, conn, rows, push)
	})
}

// runBadInput runs the table on conn; push puts a raw row on a queue, or is
// nil when the transport has no raw form (its raw rows are skipped).
func runBadInput(t *testing.T, conn *messaging.Connection, rows []badRow, push func(ctx context.Context, q, raw string) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	q := messaging.Queue{Name: "badinput-" + messaging.NewUUID()[:8]}
	var mu sync.Mutex
	good := map[int]int{}       // good message n -> deliveries
	rowsGot := map[string]int{} // row name -> deliveries to the callbacks
	failed := map[string]error{}
	rawName := map[string]string{}
	want := 0
	for _, r := range rows {
		if r.raw != "" {
			rawName[r.raw] = r.name
		}
	}
	name := func(m *messaging.Message) string {
		if n, ok := m.Headers["row"].(string); ok {
			return n
		}
		return rawName[string(m.Body)]
	}
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues: []messaging.Queue{q},
		Accept: []string{"json", "text", "raw"},
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			mu.Lock()
			defer mu.Unlock()
			if n := name(m); n != "" {
				rowsGot[n]++
			} else if b, ok := body.(map[string]any); ok {
				if n, ok := b["n"].(int64); ok {
					good[int(n)]++
				}
			}
			m.Ack()
		}},
		OnDecodeError: func(m *messaging.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			n := name(m)
			if _, dup := failed[n]; dup || n == "" {
				t.Errorf("decode error for an unknown or repeated item %q (body %.40q): %v", n, m.Body, err)
			}
			failed[n] = err
			m.Ack()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		cons.Cancel(cctx)
		if ch, err := conn.DefaultChannel(cctx); err == nil {
			q.Delete(cctx, ch, messaging.DeleteOptions{})
		}
	}()
	p, err := messaging.NewProducer(conn, messaging.ProducerOptions{RoutingKey: q.Name})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sendGood := func() {
		if err := p.Publish(ctx, map[string]any{"n": n}, messaging.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	var sent []badRow
	for _, r := range rows {
		sendGood()
		switch {
		case r.msg != nil:
			m := *r.msg
			m.Headers = map[string]any{"row": r.name}
			for k, v := range r.msg.Headers {
				m.Headers[k] = v
			}
			if err := ch.Publish(ctx, &m, "", q.Name, transport.PublishOptions{}); err != nil {
				t.Fatalf("%s: publish: %v", r.name, err)
			}
		case push != nil:
			if err := push(ctx, q.Name, r.raw); err != nil {
				t.Fatalf("%s: push: %v", r.name, err)
			}
		default:
			continue
		}
		sent = append(sent, r)
		if r.is != nil {
			want++
		}
	}
	sendGood()
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		delivered := 0
		for _, r := range sent {
			if r.is == nil && rowsGot[r.name] > 0 {
				delivered++
			}
		}
		return len(good) == n && len(failed) == want && delivered == len(sent)-want
	}
	for !done() {
		if err := conn.DrainEvents(ctx); err != nil && !errors.Is(err, messaging.ErrTimeout) {
			t.Fatalf("DrainEvents: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range sent {
		err, bad := failed[r.name]
		switch {
		case r.is == nil && bad:
			t.Errorf("%s: good, but a decode error: %v", r.name, err)
		case r.is == nil:
			t.Logf("%-36s delivered to the callbacks", r.name)
		case rowsGot[r.name] > 0:
			t.Errorf("%s: bad, but reached the callbacks", r.name)
		case !errors.Is(err, messaging.ErrDecode) || !errors.Is(err, r.is):
			t.Errorf("%s: error %v, want one matching ErrDecode and %v", r.name, err, r.is)
		default:
			t.Logf("%-36s decode error: %.120s", r.name, err)
		}
	}
	for i := range n {
		if good[i] == 0 {
			t.Errorf("good message %d was lost", i)
		}
	}
	if got := cons.DecodeErrors(); got != uint64(want) {
		t.Errorf("DecodeErrors() = %d, want %d", got, want)
	}
}

// TestDecodeErrorVisibleByDefault: with default Options and no handler, a
// message that cannot be decoded is logged (at level Error, with its queue
// and delivery tag) by slog.Default(), counted, and rejected, even when the
// hub runs under h.Run and nobody calls DrainEvents.
func TestDecodeErrorVisibleByDefault(t *testing.T) {
	var logged bytes.Buffer
	var logMu sync.Mutex
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logged}, nil)))
	defer slog.SetDefault(prev)

	ctx := testCtx(t)
	c := memConn(t)
	q := messaging.Queue{Name: "visible"}
	p, _ := messaging.NewProducer(c, messaging.ProducerOptions{RoutingKey: q.Name})
	if err := p.Publish(ctx, []byte("{not json"), messaging.PublishOptions{ContentType: "application/json",
		Declare: []messaging.Declaration{q}}); err != nil {
		t.Fatal(err)
	}
	cons, _ := messaging.NewConsumer(c, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		Callbacks: []messaging.Callback{func(any, *messaging.Message) { t.Error("callback called") }}})
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := c.Hub()
	if err != nil {
		t.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- h.Run(hctx) }()
	for c.DecodeErrors() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no decode error counted")
		case <-time.After(time.Millisecond):
		}
	}
	stop()
	<-ran
	logMu.Lock()
	out := logged.String()
	logMu.Unlock()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "queue=visible") ||
		!strings.Contains(out, "delivery_tag=") || !strings.Contains(out, "cannot decode") {
		t.Errorf("slog.Default() got %q", out)
	}
	if cons.DecodeErrors() != 1 || c.DecodeErrors() != 1 {
		t.Errorf("DecodeErrors: consumer %d, connection %d", cons.DecodeErrors(), c.DecodeErrors())
	}
	ch, _ := c.DefaultChannel(ctx)
	if n, err := q.Purge(ctx, ch); err != nil || n != 0 {
		t.Errorf("queue holds %d (%v): the message was not rejected", n, err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestDeadLetterQueue: undecodable messages go to the dead-letter queue as
// Kombu messages holding the bytes as received and the error, and leave
// their queue; good ones are untouched. Memory, Redis and RabbitMQ.
func TestDeadLetterQueue(t *testing.T) {
	t.Run("memory", func(t *testing.T) { runDeadLetter(t, memConn(t), nil) })
	eachBroker(t, func(t *testing.T, url string, conn *messaging.Connection) {
		var push func(ctx context.Context, q, raw string) error
		if strings.HasPrefix(url, "redis") {
			push = func(ctx context.Context, q, raw string) error { return redisLPush(ctx, url, q, raw) }
		}
		runDeadLetter(t, conn, push)
	})
}

func runDeadLetter(t *testing.T, conn *messaging.Connection, push func(ctx context.Context, q, raw string) error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := messaging.NewUUID()[:8]
	q := messaging.Queue{Name: "dlq-src-" + id}
	dlq := messaging.Queue{Name: "dlq-" + id}
	var got []string
	var mu sync.Mutex
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{Queues: []messaging.Queue{q},
		DeadLetterQueue: dlq.Name,
		Callbacks: []messaging.Callback{func(body any, m *messaging.Message) {
			mu.Lock()
			got = append(got, fmt.Sprint(body))
			mu.Unlock()
			m.Ack()
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err := conn.DefaultChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		cons.Cancel(cctx)
		q.Delete(cctx, ch, messaging.DeleteOptions{})
		dlq.Delete(cctx, ch, messaging.DeleteOptions{})
	}()
	bomb := issueBomb()
	bad := []*transport.Message{
		{Body: []byte("{not json"), ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: transport.Properties{CorrelationID: "c-1"}},
		{Body: bomb, ContentType: "application/json", ContentEncoding: "utf-8",
			Headers: map[string]any{"compression": "application/x-gzip", "h": "v"}},
	}
	for _, m := range bad {
		if err := ch.Publish(ctx, m, "", q.Name, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const raw = "raw bytes, not an envelope"
	if push != nil {
		if err := push(ctx, q.Name, raw); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := messaging.NewProducer(conn, messaging.ProducerOptions{RoutingKey: q.Name})
	if err := p.Publish(ctx, "good", messaging.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	want := uint64(len(bad))
	if push != nil {
		want++
	}
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 1 && cons.DecodeErrors() == want {
			break
		}
		if err := conn.DrainEvents(ctx); err != nil && !errors.Is(err, messaging.ErrTimeout) {
			t.Fatal(err)
		}
	}
	// The dead-letter publications run off the hub; read the queue until
	// they are all there.
	var dead []*messaging.Message
	for uint64(len(dead)) < want {
		m, err := dlq.Get(ctx, ch, messaging.GetOptions{Accept: []string{}})
		if errors.Is(err, messaging.ErrEmpty) {
			dctx, dcancel := context.WithTimeout(ctx, 20*time.Millisecond)
			err := conn.DrainEvents(dctx)
			dcancel()
			if err != nil && !errors.Is(err, messaging.ErrTimeout) {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, m)
		m.Ack()
	}
	byBody := map[string]*messaging.Message{}
	for _, m := range dead {
		if m.ContentType != "application/data" || m.Headers[messaging.HeaderOriginalQueue] != q.Name {
			t.Errorf("dead letter %.40q: content type %q, headers %v", m.Body, m.ContentType, m.Headers)
		}
		if s, _ := m.Headers[messaging.HeaderDecodeError].(string); !strings.Contains(s, "cannot decode") {
			t.Errorf("dead letter %.40q: %s header %q", m.Body, messaging.HeaderDecodeError, s)
		}
		byBody[string(m.Body)] = m
	}
	if m := byBody["{not json"]; m == nil || m.Properties.CorrelationID != "c-1" ||
		m.Headers[messaging.HeaderOriginalContentType] != "application/json" {
		t.Errorf("bad JSON dead letter: %+v", m)
	}
	if m := byBody[string(bomb)]; m == nil || m.Headers["compression"] != nil || m.Headers["h"] != "v" ||
		m.Headers[messaging.HeaderOriginalCompression] != "application/x-gzip" ||
		!strings.Contains(m.Headers[messaging.HeaderDecodeError].(string), "exceeds the limit") {
		t.Errorf("bomb dead letter: %v", m)
	}
	if push != nil && byBody[raw] == nil {
		t.Errorf("the raw item is not in the dead-letter queue: %d letters", len(dead))
	}
	if n, err := q.Purge(ctx, ch); err != nil || n != 0 {
		t.Errorf("source queue holds %d (%v)", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "good" {
		t.Errorf("callbacks got %q", got)
	}
}

// The bomb is a valid zlib stream of 300 MiB of zeros.
func TestIssueBombIsValid(t *testing.T) {
	zr, err := zlib.NewReader(bytes.NewReader(issueBomb()))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil || n != 300<<20 {
		t.Fatalf("%d bytes, %v", n, err)
	}
	t.Logf("bomb: %d bytes", len(issueBomb()))
}

// redisLPush pushes value onto the list key of the Redis server at url
// (redis://host:port/db, no password), as another client would.
func redisLPush(ctx context.Context, url, key, value string) error {
	return redisDo(ctx, url, "LPUSH", key, value)
}

// redisDo sends one command to the Redis server at url over a connection
// of its own, in RESP, and fails on an error reply. (The import policy
// keeps go-redis out of this package, tests included.)
func redisDo(ctx context.Context, url string, args ...string) error {
	u, err := neturl.Parse(url)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	cmd := func(args ...string) string {
		s := fmt.Sprintf("*%d\r\n", len(args))
		for _, a := range args {
			s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
		}
		return s
	}
	req := cmd(args...)
	n := 1
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		req = cmd("SELECT", db) + req
		n = 2
	}
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "-") {
			return fmt.Errorf("redis: %s", strings.TrimSpace(line[1:]))
		}
	}
	return nil
}
