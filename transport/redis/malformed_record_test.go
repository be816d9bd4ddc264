package redis

import (
	"encoding/json"
	"os/exec"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// A non-JSON message taken by Go and left unacked (the process died) must
// be recorded as JSON. It used to be recorded as '[hello, "", ""]', on
// which Kombu's restore_visible raises, abandoning its sweep: every record
// after it was never restored by Kombu.
func TestMalformedRecordDoesNotPoisonKombu(t *testing.T) {
	py := python(t)
	e := newEnv(t, nil)
	ctx := ctxT(t)
	e.rdb.LPush(ctx, e.prefix+"bq", "hello")
	e.rdb.LPush(ctx, e.prefix+"gq", `{"body": "b2s=", "content-encoding": "binary", "content-type": "application/data", "headers": {}, "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "gq"}, "delivery_mode": 2, "delivery_tag": "good-tag", "priority": 0}}`)
	// Taken the way the hub's pop script takes them, never acked.
	good, _, err := e.conn.pop(ctx, []string{e.prefix + "gq"}, 1, true)
	if err != nil || len(good) != 1 {
		t.Fatal(good, err)
	}
	bad, _, err := e.conn.pop(ctx, []string{e.prefix + "bq"}, 1, true)
	if err != nil || len(bad) != 1 {
		t.Fatal(bad, err)
	}
	// Both past the 1 s visibility timeout below, the malformed one newer:
	// ZREVRANGEBYSCORE gives it to the sweep first.
	now := time.Now().Unix()
	e.rdb.ZAdd(ctx, e.prefix+"unacked_index", goredis.Z{Score: float64(now - 20), Member: good[0].tag},
		goredis.Z{Score: float64(now - 10), Member: bad[0].tag})
	vals, _ := e.rdb.HVals(ctx, e.prefix+"unacked").Result()
	if len(vals) != 2 {
		t.Fatalf("records %q, want 2", vals)
	}
	for _, v := range vals {
		if !json.Valid([]byte(v)) {
			t.Errorf("unacked record %q is not JSON", v)
		}
	}
	script := `
import sys
from kombu import Connection
with Connection(sys.argv[1], transport_options={"global_keyprefix": sys.argv[2], "visibility_timeout": 1}) as c:
    ch = c.default_channel
    try:
        ch.qos.restore_visible(num=100)
        print("restore_visible ok")
    except Exception as exc:
        print("restore_visible raised", type(exc).__name__, exc)
`
	out, err := exec.Command(py, "-c", script, redisURL(t), e.prefix).CombinedOutput()
	t.Logf("python: %s (err %v)", out, err)
	if n, _ := e.rdb.LLen(ctx, e.prefix+"gq").Result(); n != 1 {
		t.Errorf("Kombu's restore_visible did not restore the well-formed message (gq holds %d)", n)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d unacked records left after Kombu's sweep, want 0", n)
	}
}

// Go's restore of a non-JSON message recorded as a JSON string (by the pop
// script, or by recordValue for a fanout message) pushes the original
// bytes back to its queue.
func TestMalformedRecordRestoresRawBytes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	ch := e.channel()
	raw := "hello \"world\" \\ /"
	e.rdb.LPush(ctx, e.prefix+"bq", raw)
	ps, _, err := e.conn.pop(ctx, []string{e.prefix + "bq"}, 1, true)
	if err != nil || len(ps) != 1 {
		t.Fatalf("pop: %v %v", ps, err)
	}
	rec, _ := e.rdb.HGet(ctx, e.prefix+"unacked", ps[0].tag).Result()
	if !json.Valid([]byte(rec)) {
		t.Fatalf("script record %q is not JSON", rec)
	}
	var fromGo, fromScript []string
	if err := json.Unmarshal(recordValue([]byte(raw), "", ""), &fromGo); err != nil {
		t.Fatalf("recordValue: %v", err)
	}
	if err := json.Unmarshal([]byte(rec), &fromScript); err != nil {
		t.Fatalf("script record: %v", err)
	}
	if want := []string{raw, "", ""}; !slices.Equal(fromGo, want) || !slices.Equal(fromScript, want) {
		t.Errorf("records decode to %q (recordValue) and %q (script), want %q", fromGo, fromScript, want)
	}
	m := &transport.Message{DeliveryInfo: transport.DeliveryInfo{Queue: "bq"}}
	if err := ch.st.restoreByTag(ctx, ps[0].tag, false, m); err != nil {
		t.Fatal(err)
	}
	got, err := e.rdb.LRange(ctx, e.prefix+"bq", 0, -1).Result()
	if err != nil || len(got) != 1 || got[0] != raw {
		t.Errorf("bq holds %q (err %v), want [%q]", got, err, raw)
	}
}
