package amqp

import (
	"errors"
	"reflect"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/kombu-go/kombu/transport"
)

func TestToTableNested(t *testing.T) {
	ts := time.Unix(1700000000, 0).UTC()
	in := map[string]any{
		"s": "x", "i": 7, "i8": int8(-3), "i64": int64(1) << 40, "u32": uint32(9),
		"f": 1.5, "f32": float32(0.25), "b": true, "nil": nil, "bytes": []byte("ab"),
		"list":  []any{1, "two", []any{3.0}, map[string]any{"k": false}},
		"map":   map[string]any{"inner": map[string]any{"n": int64(-1)}},
		"ss":    []string{"a", "b"},
		"ms":    map[string]string{"x": "y"},
		"ts":    ts,
		"dur":   1500 * time.Millisecond,
		"table": amqp091.Table{"t": 1},
	}
	tab, err := toTable(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Validate(); err != nil {
		t.Fatalf("amqp091 refuses the table: %v", err)
	}
	if _, ok := tab["map"].(amqp091.Table)["inner"].(amqp091.Table); !ok {
		t.Fatalf("nested map not converted to amqp091.Table: %T", tab["map"].(amqp091.Table)["inner"])
	}
	back := fromTable(tab)
	want := map[string]any{
		"s": "x", "i": int64(7), "i8": int64(-3), "i64": int64(1) << 40, "u32": int64(9),
		"f": 1.5, "f32": 0.25, "b": true, "nil": nil, "bytes": "ab",
		"list":  []any{int64(1), "two", []any{3.0}, map[string]any{"k": false}},
		"map":   map[string]any{"inner": map[string]any{"n": int64(-1)}},
		"ss":    []any{"a", "b"},
		"ms":    map[string]any{"x": "y"},
		"ts":    ts,
		"dur":   int64(1500),
		"table": map[string]any{"t": int64(1)},
	}
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", back, want)
	}
}

func TestToTableRejects(t *testing.T) {
	for _, v := range []any{struct{}{}, uint64(1) << 63, []int{1}, map[int]string{1: "a"}, make(chan int)} {
		_, err := toTable(map[string]any{"k": map[string]any{"deep": v}})
		if !errors.Is(err, ErrBadTableValue) {
			t.Errorf("%T: err = %v, want ErrBadTableValue", v, err)
		}
	}
	if tab, err := toTable(nil); err != nil || tab != nil {
		t.Errorf("toTable(nil) = %v, %v", tab, err)
	}
}

func TestFromFieldWidths(t *testing.T) {
	cases := map[string]struct {
		in   any
		want any
	}{
		"int8":    {int8(-1), int64(-1)},
		"int16":   {int16(300), int64(300)},
		"int32":   {int32(-70000), int64(-70000)},
		"uint8":   {uint8(200), int64(200)},
		"uint16":  {uint16(60000), int64(60000)},
		"uint32":  {uint32(4000000000), int64(4000000000)},
		"float32": {float32(2.5), 2.5},
		"decimal": {amqp091.Decimal{Scale: 2, Value: 1234}, 12.34},
	}
	for name, c := range cases {
		if got := fromField(c.in); got != c.want {
			t.Errorf("%s: got %#v, want %#v", name, got, c.want)
		}
	}
}

func TestPublishingProperties(t *testing.T) {
	ts := time.Unix(1700000001, 0)
	m := &transport.Message{
		Body: []byte(`{"a":1}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"compression": "application/x-gzip", "n": 3},
		Properties: transport.Properties{CorrelationID: "cid", ReplyTo: "rq", MessageID: "mid",
			Type: "t", AppID: "app", UserID: "guest", Timestamp: ts, Expiration: "10000", Priority: 300},
	}
	p, err := toPublishing(m)
	if err != nil {
		t.Fatal(err)
	}
	if p.DeliveryMode != 2 {
		t.Errorf("delivery mode 0 must go out persistent (2), got %d", p.DeliveryMode)
	}
	if p.Priority != 255 {
		t.Errorf("priority 300 must clamp to 255, got %d", p.Priority)
	}
	if p.CorrelationId != "cid" || p.ReplyTo != "rq" || p.MessageId != "mid" || p.Type != "t" ||
		p.AppId != "app" || p.UserId != "guest" || !p.Timestamp.Equal(ts) || p.Expiration != "10000" ||
		p.ContentType != "application/json" || p.ContentEncoding != "utf-8" || string(p.Body) != `{"a":1}` {
		t.Errorf("properties not carried: %+v", p)
	}
	if p.Headers["n"] != int64(3) || p.Headers["compression"] != "application/x-gzip" {
		t.Errorf("headers: %#v", p.Headers)
	}
	m.Properties.DeliveryMode = 1
	m.Properties.Priority = -5
	if p, _ = toPublishing(m); p.DeliveryMode != 1 || p.Priority != 0 {
		t.Errorf("transient/negative priority: mode %d priority %d", p.DeliveryMode, p.Priority)
	}
	m.Headers = map[string]any{"bad": struct{}{}}
	if _, err := toPublishing(m); !errors.Is(err, ErrBadTableValue) {
		t.Errorf("bad header: %v", err)
	}
}

func TestFromDelivery(t *testing.T) {
	d := &amqp091.Delivery{Body: []byte("x"), ContentType: "text/plain", Headers: amqp091.Table{"a": int32(1)},
		CorrelationId: "c", Priority: 7, DeliveryTag: 5, Redelivered: true, Exchange: "ex",
		RoutingKey: "rk", ConsumerTag: "ct"}
	m := fromDelivery(d, 105, "q")
	if m.DeliveryInfo.DeliveryTag != "105" || !m.DeliveryInfo.Redelivered || m.DeliveryInfo.Queue != "q" ||
		m.DeliveryInfo.Exchange != "ex" || m.DeliveryInfo.RoutingKey != "rk" || m.DeliveryInfo.ConsumerTag != "ct" {
		t.Errorf("delivery info: %+v", m.DeliveryInfo)
	}
	if m.Properties.DeliveryMode != 1 {
		t.Errorf("absent delivery mode must read transient, got %d", m.Properties.DeliveryMode)
	}
	if m.Headers["a"] != int64(1) || m.Properties.Priority != 7 || m.Properties.CorrelationID != "c" {
		t.Errorf("message: %+v", m)
	}
	if m := fromDelivery(&amqp091.Delivery{DeliveryTag: 1}, 1, ""); m.Headers == nil {
		t.Error("headers must be an empty map, as Kombu's application_headers or {}")
	}
	r := fromReturn(&amqp091.Return{ReplyCode: 312, ReplyText: "NO_ROUTE", Exchange: "e", RoutingKey: "k",
		Body: []byte("b"), DeliveryMode: 2, MessageId: "m"})
	if r.ReplyCode != 312 || r.ReplyText != "NO_ROUTE" || r.Exchange != "e" || r.RoutingKey != "k" ||
		string(r.Message.Body) != "b" || r.Message.Properties.MessageID != "m" || r.Message.Properties.DeliveryMode != 2 {
		t.Errorf("returned: %+v %+v", r, r.Message)
	}
}

func TestBrokerError(t *testing.T) {
	nf := brokerError(&amqp091.Error{Code: 404, Reason: "NOT_FOUND - no queue 'x' in vhost '/'", Server: true, Recover: true}, false)
	if !errors.Is(nf, transport.ErrNotFound) || !transport.IsChannelError(nf) || transport.IsConnectionError(nf) {
		t.Errorf("404: %v", nf)
	}
	pf := brokerError(&amqp091.Error{Code: 406, Reason: "PRECONDITION_FAILED", Server: true, Recover: true}, false)
	if !errors.Is(pf, transport.ErrNotEquivalent) || !errors.Is(pf, transport.ErrPreconditionFailed) {
		t.Errorf("406: %v", pf)
	}
	hard := brokerError(&amqp091.Error{Code: 320, Reason: "CONNECTION_FORCED", Server: true}, true)
	if !transport.IsConnectionError(hard) || !errors.Is(hard, transport.ErrConnectionLost) {
		t.Errorf("320: %v", hard)
	}
	closedConn := brokerError(amqp091.ErrClosed, true)
	if !transport.IsConnectionError(closedConn) {
		t.Errorf("closed connection: %v", closedConn)
	}
	closedCh := brokerError(amqp091.ErrClosed, false)
	if !transport.IsChannelError(closedCh) || errors.Is(closedCh, transport.ErrConnectionLost) {
		t.Errorf("closed channel: %v", closedCh)
	}
	if brokerError(nil, false) != nil {
		t.Error("nil must map to nil")
	}
	other := brokerError(errors.New("broken pipe"), false)
	if !transport.IsConnectionError(other) {
		t.Errorf("I/O error: %v", other)
	}
}

func TestIntervals(t *testing.T) {
	next := intervals(2*time.Second, 2*time.Second, 30*time.Second)
	var got []time.Duration
	for range 18 {
		got = append(got, next()/time.Second)
	}
	want := []time.Duration{2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 32, 32}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Kombu's fxrange gives %v, got %v", want, got)
	}
	zero := intervals(time.Second, 0, 0)
	if zero() != time.Second || zero() != time.Second {
		t.Error("step 0 must repeat start")
	}
}
