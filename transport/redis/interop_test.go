package redis

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
)

// python returns the interpreter with Kombu (KOMBU_TEST_PYTHON, else
// /usr/bin/python3 when it imports kombu), or skips.
func python(t *testing.T) string {
	t.Helper()
	redisURL(t)
	py := os.Getenv("KOMBU_TEST_PYTHON")
	if py == "" {
		if exec.Command("/usr/bin/python3", "-c", "import kombu, redis").Run() == nil {
			py = "/usr/bin/python3"
		}
	}
	if py == "" {
		transporttest.Require(t, "no Python with Kombu: set KOMBU_TEST_PYTHON (apt-get install python3-kombu python3-redis)")
	}
	return py
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// pyOptions are the Kombu transport options that make the Python side
// share this test's keys.
func (e *env) pyOptions(extra map[string]any) map[string]any {
	o := map[string]any{"global_keyprefix": e.prefix}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func pyPublish(t *testing.T, e *env, opts map[string]any, msgs []map[string]any) {
	t.Helper()
	cmd := exec.Command(python(t), "testdata/kombu_peer.py", "publish", redisURL(t), mustJSON(e.pyOptions(opts)), mustJSON(msgs))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python publish: %v\n%s", err, out)
	}
}

// pyMsg is one message as the Python consumer printed it.
type pyMsg struct {
	Payload         any            `json:"payload"`
	RawBody         string         `json:"raw_body_b64"`
	Headers         map[string]any `json:"headers"`
	Properties      map[string]any `json:"properties"`
	DeliveryInfo    map[string]any `json:"delivery_info"`
	ContentType     string         `json:"content_type"`
	ContentEncoding string         `json:"content_encoding"`
}

// pyConsumer runs the Python consumer; wait returns what it printed.
type pyConsumer struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	msgs   []pyMsg
	ready  chan struct{}
	done   chan struct{}
	stderr bytes.Buffer
}

func startPyConsumer(t *testing.T, e *env, opts map[string]any, bindings []map[string]any, n int, noAckExit bool) *pyConsumer {
	t.Helper()
	args := []string{"testdata/kombu_peer.py", "consume", redisURL(t), mustJSON(e.pyOptions(opts)), mustJSON(bindings),
		mustJSON(n), "30"}
	if noAckExit {
		args = append(args, "noack-exit")
	}
	pc := &pyConsumer{cmd: exec.Command(python(t), args...), ready: make(chan struct{}), done: make(chan struct{})}
	pc.cmd.Stderr = &pc.stderr
	out, err := pc.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // ends with the process's stdout
		defer close(pc.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "READY" {
				close(pc.ready)
				continue
			}
			var m pyMsg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Errorf("python printed %q: %v", line, err)
				continue
			}
			pc.mu.Lock()
			pc.msgs = append(pc.msgs, m)
			pc.mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.cmd.Process.Kill(); <-pc.done; pc.cmd.Wait() })
	return pc
}

func (pc *pyConsumer) wait(t *testing.T) []pyMsg {
	t.Helper()
	select {
	case <-pc.done:
	case <-time.After(60 * time.Second):
		t.Fatal("python consumer hung")
	}
	if err := pc.cmd.Wait(); err != nil {
		t.Fatalf("python consumer: %v\n%s", err, pc.stderr.String())
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.msgs
}

// psubscribers returns the ids of the server's clients in PSUBSCRIBE.
func psubscribers(t *testing.T, e *env) map[string]bool {
	t.Helper()
	list, err := e.rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "cmd=psubscribe") {
			ids[strings.Fields(line)[0]] = true
		}
	}
	return ids
}

// waitNewPsubscriber waits until a client not in before runs PSUBSCRIBE.
func waitNewPsubscriber(t *testing.T, e *env, before map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for id := range psubscribers(t, e) {
			if !before[id] {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the Python consumer never subscribed")
}

// waitSubscribed waits until the Go channel's subscriptions are confirmed.
func waitSubscribed(t *testing.T, e *env, ch *Channel, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var got int
		e.h.Call(context.Background(), func() { got = ch.st.subscribed })
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("PSUBSCRIBE never confirmed")
}

func zlibBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func unzlib(t *testing.T, b []byte) []byte {
	t.Helper()
	r, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func drain(t *testing.T, out <-chan *transport.Message, n int) []*transport.Message {
	t.Helper()
	var got []*transport.Message
	for i := 0; i < n; i++ {
		got = append(got, waitFor(t, out, "delivery from Python"))
	}
	return got
}

// Python publishes to direct, topic and default exchanges, with
// priorities, headers, properties, compression and binary bodies; Go
// consumes.
func TestInteropPythonToGo(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	headers := map[string]any{"h1": "v", "n": float64(3), "nested": map[string]any{"é": []any{true, nil, 2.5}}}
	pyPublish(t, e, nil, []map[string]any{
		{"exchange": "pdx", "type": "direct", "routing_key": "a", "queue": "pq_direct", "body": map[string]any{"k": "é"},
			"headers": headers, "properties": map[string]any{"correlation_id": "cid", "reply_to": "rq", "message_id": "mid"}},
		{"exchange": "ptx", "type": "topic", "routing_key": "x.y.z", "binding_key": "x.#", "queue": "pq_topic", "body": "topic"},
		{"exchange": "", "routing_key": "pq_plain", "body": map[string]any{"bytes_b64": base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff})}},
		{"exchange": "", "routing_key": "pq_zlib", "body": map[string]any{"z": 1}, "compression": "zlib"},
		{"exchange": "", "routing_key": "pq_prio", "body": "first", "priority": 6},
		{"exchange": "", "routing_key": "pq_prio", "body": "second", "priority": 3},
		{"exchange": "", "routing_key": "pq_prio", "body": "third", "priority": 6},
		{"exchange": "", "routing_key": "pq_prio", "body": "zero", "priority": 0},
	})
	ch := e.channel()
	ch.Qos(ctx, 1)
	m := drain(t, consumeN(t, ch, "pq_direct", false, true), 1)[0]
	if string(m.Body) != `{"k": "\u00e9"}` || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" {
		t.Errorf("direct: %q %q %q", m.Body, m.ContentType, m.ContentEncoding)
	}
	if !reflect.DeepEqual(m.Headers, map[string]any{"h1": "v", "n": int64(3), "nested": map[string]any{"é": []any{true, nil, 2.5}}}) {
		t.Errorf("headers %#v", m.Headers)
	}
	if m.Properties.CorrelationID != "cid" || m.Properties.ReplyTo != "rq" || m.Properties.MessageID != "mid" ||
		m.DeliveryInfo.Exchange != "pdx" || m.DeliveryInfo.RoutingKey != "a" || !uuidRE.MatchString(m.DeliveryInfo.DeliveryTag) {
		t.Errorf("properties %+v delivery %+v", m.Properties, m.DeliveryInfo)
	}
	if m := drain(t, consumeN(t, ch, "pq_topic", false, true), 1)[0]; string(m.Body) != `"topic"` || m.DeliveryInfo.RoutingKey != "x.y.z" {
		t.Errorf("topic: %q %+v", m.Body, m.DeliveryInfo)
	}
	if m := drain(t, consumeN(t, ch, "pq_plain", false, true), 1)[0]; !bytes.Equal(m.Body, []byte{0, 1, 0xff}) || m.ContentEncoding != "binary" {
		t.Errorf("bytes: %q %q", m.Body, m.ContentEncoding)
	}
	if m := drain(t, consumeN(t, ch, "pq_zlib", false, true), 1)[0]; m.Headers["compression"] != "application/x-gzip" ||
		string(unzlib(t, m.Body)) != `{"z": 1}` {
		t.Errorf("zlib: %v %q", m.Headers, m.Body)
	}
	var order []string
	for _, m := range drain(t, consumeN(t, ch, "pq_prio", false, true), 4) {
		order = append(order, string(m.Body))
	}
	if join(order) != `"zero" "second" "first" "third"` {
		t.Errorf("priority order %s", join(order))
	}
}

// Go publishes the same variety; Python consumes.
func TestInteropGoToPython(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	for _, ex := range []transport.Exchange{{Name: "gdx", Type: transport.Direct}, {Name: "gtx", Type: transport.Topic}} {
		if err := ch.DeclareExchange(ctx, ex); err != nil {
			t.Fatal(err)
		}
	}
	ch.BindQueue(ctx, transport.Binding{Queue: "gq_direct", Exchange: "gdx", RoutingKey: "a"})
	ch.BindQueue(ctx, transport.Binding{Queue: "gq_topic", Exchange: "gtx", RoutingKey: "x.*"})
	m := &transport.Message{Body: []byte(`{"k": "é"}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers:    map[string]any{"h1": "v", "n": int64(3), "nested": map[string]any{"é": []any{true, nil, 2.5}}},
		Properties: transport.Properties{CorrelationID: "cid", ReplyTo: "rq", MessageID: "mid"}}
	pub := func(m *transport.Message, ex, rk string) {
		t.Helper()
		if err := ch.Publish(ctx, m, ex, rk, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pub(m, "gdx", "a")
	pub(&transport.Message{Body: []byte(`"topic"`), ContentType: "application/json", ContentEncoding: "utf-8"}, "gtx", "x.y")
	pub(&transport.Message{Body: []byte{0, 1, 0xff}, ContentType: "application/data", ContentEncoding: "binary"}, "", "gq_plain")
	pub(&transport.Message{Body: zlibBytes(t, []byte(`{"z": 1}`)), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"compression": "application/x-gzip"}}, "", "gq_zlib")
	for _, x := range []struct {
		b string
		p int
	}{{"first", 6}, {"second", 3}, {"third", 6}, {"zero", 0}} {
		pm := textMsg(x.b)
		pm.ContentType, pm.Body = "application/json", []byte(`"`+x.b+`"`)
		pm.Properties.Priority = x.p
		pub(pm, "", "gq_prio")
	}
	consume := func(bindings []map[string]any, n int) []pyMsg {
		return startPyConsumer(t, e, nil, bindings, n, false).wait(t)
	}
	got := consume([]map[string]any{{"queue": "gq_direct", "exchange": "gdx", "routing_key": "a"}}, 1)
	if p := got[0]; !reflect.DeepEqual(p.Payload, map[string]any{"k": "é"}) ||
		!reflect.DeepEqual(p.Headers, map[string]any{"h1": "v", "n": float64(3), "nested": map[string]any{"é": []any{true, nil, 2.5}}}) ||
		p.Properties["correlation_id"] != "cid" || p.Properties["reply_to"] != "rq" || p.Properties["message_id"] != "mid" ||
		p.DeliveryInfo["exchange"] != "gdx" || p.DeliveryInfo["routing_key"] != "a" {
		t.Errorf("direct: %+v", p)
	}
	got = consume([]map[string]any{{"queue": "gq_topic", "exchange": "gtx", "type": "topic", "routing_key": "x.*"}}, 1)
	if got[0].Payload != "topic" {
		t.Errorf("topic: %+v", got[0])
	}
	got = consume([]map[string]any{{"queue": "gq_plain"}}, 1)
	if !reflect.DeepEqual(got[0].Payload, map[string]any{"bytes_b64": base64.StdEncoding.EncodeToString([]byte{0, 1, 0xff})}) {
		t.Errorf("bytes: %+v", got[0])
	}
	got = consume([]map[string]any{{"queue": "gq_zlib"}}, 1)
	if !reflect.DeepEqual(got[0].Payload, map[string]any{"z": float64(1)}) {
		t.Errorf("zlib: %+v", got[0])
	}
	got = consume([]map[string]any{{"queue": "gq_prio"}}, 4)
	var order []string
	for _, p := range got {
		order = append(order, p.Payload.(string))
	}
	if join(order) != "zero second first third" {
		t.Errorf("priority order %s", join(order))
	}
}

// Fanout (PUB/SUB) both ways: the subscriber subscribes first.
func TestInteropFanout(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	fx := uniq("ifx")
	ch.DeclareExchange(ctx, transport.Exchange{Name: fx, Type: transport.Fanout})
	ch.BindQueue(ctx, transport.Binding{Queue: "gofq", Exchange: fx})
	out := consumeN(t, ch, "gofq", false, true)
	waitSubscribed(t, e, ch, 1)
	pyPublish(t, e, nil, []map[string]any{{"exchange": fx, "type": "fanout", "body": map[string]any{"from": "python"}}})
	if m := waitFor(t, out, "fanout from Python"); string(m.Body) != `{"from": "python"}` || m.DeliveryInfo.Exchange != fx {
		t.Errorf("got %q %+v", m.Body, m.DeliveryInfo)
	}

	before := psubscribers(t, e)
	pc := startPyConsumer(t, e, nil, []map[string]any{{"queue": "pyfq", "exchange": fx, "type": "fanout"}}, 1, false)
	waitNewPsubscriber(t, e, before)
	if err := ch.Publish(ctx, &transport.Message{Body: []byte(`{"from": "go"}`), ContentType: "application/json",
		ContentEncoding: "utf-8"}, fx, "", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	got := pc.wait(t)
	if !reflect.DeepEqual(got[0].Payload, map[string]any{"from": "go"}) {
		t.Errorf("python got %+v", got[0])
	}
	// The Go consumer received its own publication too.
	if m := waitFor(t, out, "fanout from Go"); string(m.Body) != `{"from": "go"}` {
		t.Errorf("go got %q", m.Body)
	}
}

// A message left unacknowledged by a dead Python consumer is restored by
// Go's visibility-timeout sweep and consumed by Go; and the reverse, with
// Python's restore_visible.
func TestInteropUnackedRestore(t *testing.T) {
	e := newEnv(t, map[string]any{"visibility_timeout": 1, "unacked_restore_interval": "0.2",
		"unacked_restore_throttle": 1})
	ctx := ctxT(t)
	pyPublish(t, e, nil, []map[string]any{{"exchange": "", "routing_key": "uq", "body": "left by python", "priority": 3}})
	dead := startPyConsumer(t, e, nil, []map[string]any{{"queue": "uq"}}, 1, true).wait(t)
	if len(dead) != 1 || dead[0].Payload != "left by python" {
		t.Fatalf("python consumer got %+v", dead)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 1 {
		t.Fatalf("python left %d records, want 1", n)
	}
	ch := e.channel()
	out := consumeN(t, ch, "uq", false, true)
	m := waitFor(t, out, "message restored from Python's record")
	if string(m.Body) != `"left by python"` || !m.DeliveryInfo.Redelivered || m.Headers["redelivered"] != true {
		t.Errorf("got %q %+v %v", m.Body, m.DeliveryInfo, m.Headers)
	}
	ch.Close()

	// Go dies holding a message: its channel closes without restoring.
	e2 := newEnv(t, map[string]any{"global_keyprefix": e.prefix, "restore_on_close": false})
	ch2 := e2.channel()
	ch2.Publish(ctx, textMsg("left by go"), "", "uq2", transport.PublishOptions{})
	out2 := consumeN(t, ch2, "uq2", false, false)
	waitFor(t, out2, "delivery to the dying Go consumer")
	if err := ch2.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 1 {
		t.Fatalf("go left %d records, want 1", n)
	}
	backdate(t, e, e.prefix+"unacked_index", 10) // past the visibility timeout
	got := startPyConsumer(t, e, map[string]any{"visibility_timeout": 1}, []map[string]any{{"queue": "uq2"}}, 1, false).wait(t)
	if len(got) != 1 || got[0].Payload != "left by go" || got[0].Headers["redelivered"] != true {
		t.Errorf("python got %+v", got)
	}
}
