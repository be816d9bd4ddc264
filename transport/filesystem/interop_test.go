package filesystem

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

// pyLine is one message as the Python consumer printed it.
type pyLine struct {
	Payload     map[string]any `json:"payload"`
	RawBody     string         `json:"raw_body_b64"`
	Headers     map[string]any `json:"headers"`
	Properties  map[string]any `json:"properties"`
	Redelivered bool           `json:"redelivered"`
	ContentType string         `json:"content_type"`
}

func parseLines(t *testing.T, out []byte) []pyLine {
	t.Helper()
	var lines []pyLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue
		}
		var l pyLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("python line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// msgFiles lists the message files left in dir.
func msgFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".msg") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestInteropPythonToGo: Kombu 5.2.4 publishes into its data_folder_out,
// which is our data_folder_in; we consume every message in order with its
// body, headers and properties, and leave no file behind.
func TestInteropPythonToGo(t *testing.T) {
	py2go, go2py := testDir(t), testDir(t)
	python(t)
	peer(t, "publish", go2py, py2go, "q", "20")
	peer(t, "publish", go2py, py2go, "q", "5", "raw")

	// Kombu orders by file name; within one millisecond its uuid4s are
	// random, so the order to expect is the folder's, read before.
	order := fileOrder(t, py2go)

	h := runHub(t)
	c := dial(t, h, py2go, go2py, nil)
	ch := mustChannel(t, c)
	wait := collect(t, ch, "q", true)
	msgs := wait(25)
	for k, m := range msgs {
		if got := m.Headers["k"]; got != order[k] {
			t.Errorf("delivery %d: header k %v, want %v (the folder's order %v)", k, got, order[k], order)
		}
	}
	var jsonMsgs, rawMsgs []*transport.Message
	for _, m := range msgs {
		if m.ContentType == "application/json" {
			jsonMsgs = append(jsonMsgs, m)
		} else {
			rawMsgs = append(rawMsgs, m)
		}
	}
	byK := func(a, b *transport.Message) int { return cmp.Compare(headerInt(a, "k"), headerInt(b, "k")) }
	slices.SortFunc(jsonMsgs, byK)
	slices.SortFunc(rawMsgs, byK)
	if len(jsonMsgs) != 20 || len(rawMsgs) != 5 {
		t.Fatalf("%d json and %d raw messages, want 20 and 5", len(jsonMsgs), len(rawMsgs))
	}
	for k, m := range jsonMsgs {
		if m.Err != nil {
			t.Fatalf("message %d: %v", k, m.Err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatalf("message %d body %q: %v", k, m.Body, err)
		}
		if body["i"] != float64(k) || body["text"] != "héllo ✓" {
			t.Errorf("message %d: body %v (order or content)", k, body)
		}
		if m.ContentType != "application/json" || m.Headers["h"] != "v" {
			t.Errorf("message %d: content type %q headers %v", k, m.ContentType, m.Headers)
		}
		if m.Properties.Priority != 3 || m.Properties.CorrelationID != "c"+strconv.Itoa(k) || m.Properties.ReplyTo != "replies" {
			t.Errorf("message %d: properties %+v", k, m.Properties)
		}
		if m.DeliveryInfo.RoutingKey != "q" || m.DeliveryInfo.Redelivered {
			t.Errorf("message %d: delivery info %+v", k, m.DeliveryInfo)
		}
	}
	for k, m := range rawMsgs {
		want := append([]byte{byte(k), 0, 255, 10}, "raw"...)
		if !bytes.Equal(m.Body, want) || m.ContentType != "application/octet-stream" {
			t.Errorf("raw message %d: %q %q, want %q", k, m.Body, m.ContentType, want)
		}
	}
	waitNoFiles(t, py2go)
}

// headerInt reads an integer header.
func headerInt(m *transport.Message, k string) int {
	switch v := m.Headers[k].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	case json.Number:
		n, _ := v.Int64()
		return int(n)
	}
	return -1
}

// fileOrder returns the header "k" of dir's message files, in the order
// consumers take them, and checks that it is also Kombu's order (names
// sorted as strings).
func fileOrder(t *testing.T, dir string) []any {
	t.Helper()
	lists, err := scan(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []any
	var ours []string
	for _, list := range lists {
		for _, e := range list {
			ours = append(ours, e.name)
			data, err := os.ReadFile(filepath.Join(dir, e.name))
			if err != nil {
				t.Fatal(err)
			}
			m := decode(data)
			if m.Err != nil {
				t.Fatalf("%s: %v", e.name, m.Err)
			}
			order = append(order, m.Headers["k"])
		}
	}
	kombu := slices.Clone(ours)
	slices.Sort(kombu) // Kombu: sorted(os.listdir())
	if !slices.Equal(ours, kombu) {
		t.Errorf("our order %v differs from Kombu's %v", ours, kombu)
	}
	return order
}

// waitNoFiles waits until dir holds no message file and our claim folders
// are empty (the acks are applied by the executor, after delivery).
func waitNoFiles(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := msgFiles(t, dir)
		claims, _ := filepath.Glob(filepath.Join(dir, ourDir, "*", "*.msg"))
		if len(left)+len(claims) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("files left: %v, claimed: %v", left, claims)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInteropGoToPython: we publish into our data_folder_out, Kombu
// consumes from it as its data_folder_in.
func TestInteropGoToPython(t *testing.T) {
	go2py, py2go := testDir(t), testDir(t)
	python(t)
	h := runHub(t)
	c := dial(t, h, py2go, go2py, nil)
	ch := mustChannel(t, c)
	ctx := context.Background()
	for k := range 20 {
		m := &transport.Message{
			Body:            fmt.Appendf(nil, `{"i": %d, "text": "héllo ✓"}`, k),
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
			Headers:         map[string]any{"k": k, "h": "v"},
			Properties:      transport.Properties{CorrelationID: "c" + strconv.Itoa(k), ReplyTo: "replies", Priority: 3, DeliveryMode: 2},
		}
		if err := ch.Publish(ctx, m, "", "q", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	raw := []byte{0, 1, 2, 255, '\n'}
	if err := ch.Publish(ctx, &transport.Message{Body: raw, ContentType: "application/octet-stream", ContentEncoding: "binary"},
		"", "q", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, peer(t, "consume", go2py, py2go, "q", "21", "20", "ack"))
	if len(lines) != 21 {
		t.Fatalf("python consumed %d messages, want 21", len(lines))
	}
	for k, l := range lines[:20] {
		if l.Payload["i"] != float64(k) || l.Payload["text"] != "héllo ✓" {
			t.Errorf("python message %d: payload %v (order or content)", k, l.Payload)
		}
		if l.Headers["h"] != "v" || l.Properties["correlation_id"] != "c"+strconv.Itoa(k) ||
			l.Properties["reply_to"] != "replies" || l.Properties["priority"] != float64(3) {
			t.Errorf("python message %d: headers %v properties %v", k, l.Headers, l.Properties)
		}
	}
	if got, _ := base64.StdEncoding.DecodeString(lines[20].RawBody); !bytes.Equal(got, raw) {
		t.Errorf("python raw body %q, want %q", got, raw)
	}
	if left := msgFiles(t, go2py); len(left) > 0 {
		t.Errorf("files left after Kombu consumed: %v", left)
	}
}

// TestInteropKombuRestore: a Kombu consumer that takes messages and closes
// without acknowledging them restores them (Kombu re-publishes them into
// its data_folder_out, here the same folder); we then consume all of them,
// the restored ones marked redelivered.
func TestInteropKombuRestore(t *testing.T) {
	dir := testDir(t)
	python(t)
	peer(t, "publish", dir, dir, "q", "5")
	lines := parseLines(t, peer(t, "consume", dir, dir, "q", "3", "20", "noack-close"))
	if len(lines) != 3 {
		t.Fatalf("python took %d, want 3", len(lines))
	}
	h := runHub(t)
	c := dial(t, h, dir, dir, nil)
	msgs := collect(t, mustChannel(t, c), "q", true)(5)
	took := map[float64]bool{}
	for _, l := range lines {
		took[l.Payload["i"].(float64)] = true
	}
	seen := map[float64]bool{}
	redelivered := 0
	for _, m := range msgs {
		var body map[string]any
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatal(err)
		}
		i := body["i"].(float64)
		if seen[i] {
			t.Errorf("message %v twice", i)
		}
		seen[i] = true
		if m.DeliveryInfo.Redelivered {
			redelivered++
			if !took[i] {
				t.Errorf("message %v marked redelivered; Kombu took only %v", i, took)
			}
		}
	}
	if len(seen) != 5 || redelivered != 3 {
		t.Errorf("seen %v, redelivered %d; want 5 distinct, 3 redelivered", seen, redelivered)
	}
	waitNoFiles(t, dir)
}

// TestInteropGoRestore: we take messages without acknowledging them and
// close; they are back in the folder under their own names (the front of
// the queue) and Kombu consumes them, marked redelivered. The messages are
// ours (ordered within a millisecond), so the order is checked too.
func TestInteropGoRestore(t *testing.T) {
	dir := testDir(t)
	python(t)
	h := runHub(t)
	tr, err := New(transport.Config{Options: map[string]any{"data_folder_in": dir, "data_folder_out": dir}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tr.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	ch := mustChannel(t, conn.(*Conn))
	for k := range 5 {
		if err := ch.Publish(context.Background(), &transport.Message{Body: fmt.Appendf(nil, `{"i": %d}`, k),
			ContentType: "application/json", ContentEncoding: "utf-8"}, "", "q", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ch.Qos(context.Background(), 3)
	collect(t, ch, "q", false)(3)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, peer(t, "consume", dir, dir, "q", "5", "20", "ack"))
	if len(lines) != 5 {
		t.Fatalf("python consumed %d, want 5", len(lines))
	}
	for k, l := range lines {
		if l.Payload["i"] != float64(k) {
			t.Errorf("python message %d: %v (restored messages go back to the front)", k, l.Payload)
		}
		if l.Redelivered != (k < 3) {
			t.Errorf("python message %d: redelivered %v", k, l.Redelivered)
		}
	}
}

// TestInteropCompetingConsumers: a Kombu consumer and ours take from one
// queue at once; every message is delivered exactly once (both claim by
// rename, which one of them wins).
func TestInteropCompetingConsumers(t *testing.T) {
	dir := testDir(t)
	python(t)
	const n = 600
	h := runHub(t)
	c := dial(t, h, dir, dir, nil)
	ch := mustChannel(t, c)
	ctx := context.Background()
	for k := range n {
		if err := ch.Publish(ctx, &transport.Message{Body: fmt.Appendf(nil, `{"i": %d}`, k), ContentType: "application/json",
			ContentEncoding: "utf-8"}, "", "q", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	goGot := map[int]int{}
	_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "q"}, func(m *transport.Message) {
		var b struct{ I int }
		json.Unmarshal(m.Body, &b)
		mu.Lock()
		goGot[b.I]++
		mu.Unlock()
		time.Sleep(200 * time.Microsecond) // leave Kombu a share
		ch.Ack(m.DeliveryInfo.DeliveryTag)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Kombu consumes whatever it can get within its timeout; it exits 3
	// when it got fewer than asked, which is expected here.
	cmd := pyCommand(t, "consume", dir, dir, "q", strconv.Itoa(n), "3", "ack")
	out, _ := cmd.Output()
	lines := parseLines(t, out)
	all := map[int]int{}
	for _, l := range lines {
		all[int(l.Payload["i"].(float64))]++
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		total := len(goGot) + len(lines)
		mu.Unlock()
		if total >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, k := range goGot {
		all[i] += k
	}
	dups, lost := 0, 0
	for i := range n {
		switch all[i] {
		case 0:
			lost++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("published %d: Kombu took %d, Go took %d, lost %d, duplicated %d", n, len(lines), len(goGot), lost, dups)
	if lost != 0 || dups != 0 {
		t.Errorf("lost %d, duplicated %d; want 0, 0", lost, dups)
	}
	if len(lines) == 0 || len(goGot) == 0 {
		t.Logf("one side took nothing: the competition was not exercised (machine busy?)")
	}
}
