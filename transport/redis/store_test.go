package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func lrange(t *testing.T, e *env, key string) []*transport.Message {
	t.Helper()
	vals, err := e.rdb.LRange(context.Background(), e.prefix+key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*transport.Message, len(vals))
	for i, v := range vals {
		m, err := decodeEnvelope([]byte(v))
		if err != nil {
			t.Fatalf("%s[%d]: %v", key, i, err)
		}
		out[i] = m
	}
	return out
}

// Kombu §7.2 items 1 and 2: publisher-made UUID tags, priority keys.
func TestPublishTagsAndPriorityKeys(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	for _, p := range []int{0, 1, 3, 5, 6, 9, 313, -4} {
		m := textMsg("x")
		m.Properties.Priority = p
		if err := ch.Publish(ctx, m, "", "george", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"george": 3, "george\x06\x163": 2, "george\x06\x166": 1, "george\x06\x169": 2}
	tags := map[string]bool{}
	for key, n := range want {
		msgs := lrange(t, e, key)
		if len(msgs) != n {
			t.Errorf("%q holds %d messages, want %d", key, len(msgs), n)
		}
		for _, m := range msgs {
			tag := m.DeliveryInfo.DeliveryTag
			if !uuidRE.MatchString(tag) || tags[tag] {
				t.Errorf("delivery tag %q is not a fresh uuid4", tag)
			}
			tags[tag] = true
			if m.DeliveryInfo.RoutingKey != "george" || m.DeliveryInfo.Exchange != "" {
				t.Errorf("delivery_info %+v", m.DeliveryInfo)
			}
		}
	}
	if got := keysLike(t, e, "george*"); len(got) != 4 {
		t.Errorf("keys %q", got)
	}
}

// Items 18, 19, 23, 24, 26, 27 and Kombu's binding members (§1.5).
func TestBindingsGetPurgeDelete(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: "myex", Type: transport.Direct}); err != nil {
		t.Fatal(err)
	}
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: "tex", Type: transport.Topic}); err != nil {
		t.Fatal(err)
	}
	// An empty Redis queue does not exist: passive declare fails (trap 11).
	_, err := ch.DeclareQueue(ctx, transport.Queue{Name: "myq", Passive: true})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("passive declare of an empty queue: %v, want NOT_FOUND", err)
	}
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: "myq"}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []transport.Binding{
		{Queue: "myq", Exchange: "myex", RoutingKey: "rk"},
		{Queue: "myq", Exchange: "tex", RoutingKey: "a.*.c"},
		{Queue: "myq", Exchange: "tex", RoutingKey: "a.#"},
	} {
		if err := ch.BindQueue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	members, _ := e.rdb.SMembers(ctx, e.prefix+"_kombu.binding.myex").Result()
	if len(members) != 1 || members[0] != "rk\x06\x16\x06\x16myq" {
		t.Errorf("direct member %q", members)
	}
	members, _ = e.rdb.SMembers(ctx, e.prefix+"_kombu.binding.tex").Result()
	sort.Strings(members)
	wantT := []string{`a.#` + "\x06\x16" + `^a\..*?$` + "\x06\x16myq", `a.*.c` + "\x06\x16" + `^a\..*?[^\.]\.c$` + "\x06\x16myq"}
	if len(members) != 2 || members[0] != wantT[0] || members[1] != wantT[1] {
		t.Errorf("topic members %q, want %q", members, wantT)
	}
	for i := 0; i < 10; i++ {
		if err := ch.Publish(ctx, textMsg("d"), "myex", "rk", transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Publish(ctx, textMsg("t"), "tex", "a.b.x.c", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctx, textMsg("none"), "myex", "other", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := ch.DeclareQueue(ctx, transport.Queue{Name: "myq", Passive: true})
	if err != nil || info.Messages != 11 {
		t.Fatalf("passive declare: %+v %v, want 11 messages", info, err)
	}
	m, err := ch.Get(ctx, "myq", true)
	if err != nil || string(m.Body) != "d" || m.DeliveryInfo.Exchange != "myex" {
		t.Fatalf("get: %+v %v", m, err)
	}
	n, err := ch.PurgeQueue(ctx, "myq")
	if err != nil || n != 10 {
		t.Fatalf("purge: %d %v, want 10", n, err)
	}
	if _, err := ch.Get(ctx, "myq", true); !errors.Is(err, transport.ErrEmpty) {
		t.Fatalf("get from empty: %v", err)
	}
	if _, err := ch.Get(ctx, "does-not-exist", false); !errors.Is(err, transport.ErrEmpty) {
		t.Fatalf("get from missing: %v", err)
	}
	ch.Publish(ctx, textMsg("d"), "myex", "rk", transport.PublishOptions{})
	if _, err := ch.DeleteQueue(ctx, "myq", false, false); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.Exists(ctx, e.prefix+"myq").Result(); n != 0 {
		t.Error("queue key survived delete")
	}
	if n, _ := e.rdb.SCard(ctx, e.prefix+"_kombu.binding.myex").Result(); n != 0 {
		t.Error("binding member survived delete")
	}
}

// The unacked record's format and restore (items 3, 4, 5, 8, 32).
func TestRequeueRestoreAndRecord(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	q := "prq"
	if err := ch.DeclareExchange(ctx, transport.Exchange{Name: q}); err != nil {
		t.Fatal(err)
	}
	ch.DeclareQueue(ctx, transport.Queue{Name: q})
	ch.BindQueue(ctx, transport.Binding{Queue: q, Exchange: q, RoutingKey: q})
	for _, x := range []struct {
		body string
		prio int
	}{{"first", 6}, {"second", 3}, {"third", 6}} {
		m := textMsg(x.body)
		m.Properties.Priority = x.prio
		m.Headers = map[string]any{"h": "v"}
		if err := ch.Publish(ctx, m, q, q, transport.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []*transport.Message
	for i := 0; i < 3; i++ {
		m, err := ch.Get(ctx, q, false)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if string(got[0].Body) != "second" || string(got[1].Body) != "first" || string(got[2].Body) != "third" {
		t.Fatalf("order %s %s %s", got[0].Body, got[1].Body, got[2].Body)
	}
	// Records: [envelope, exchange, routing_key], scored by delivery time.
	raw, err := e.rdb.HGet(ctx, e.prefix+"unacked", got[0].DeliveryInfo.DeliveryTag).Result()
	if err != nil {
		t.Fatal(err)
	}
	var rec []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || len(rec) != 3 {
		t.Fatalf("record %s: %v", raw, err)
	}
	if string(rec[1]) != `"prq"` || string(rec[2]) != `"prq"` {
		t.Errorf("record exchange/routing key %s %s", rec[1], rec[2])
	}
	score, err := e.rdb.ZScore(ctx, e.prefix+"unacked_index", got[0].DeliveryInfo.DeliveryTag).Result()
	if err != nil || time.Since(time.Unix(int64(score), 0)) > time.Hour {
		t.Errorf("index score %v %v", score, err)
	}
	for _, m := range got {
		if err := ch.Reject(m.DeliveryInfo.DeliveryTag, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Publish(ctx, textMsg("fourth"), q, q, transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	// Rejects are asynchronous: wait until the three are back.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n3, _ := e.rdb.LLen(ctx, e.prefix+q+"\x06\x163").Result()
		n6, _ := e.rdb.LLen(ctx, e.prefix+q+"\x06\x166").Result()
		if n3+n6 == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requeued messages not back: %d %d", n3, n6)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var order []string
	for i := 0; i < 4; i++ {
		m, err := ch.Get(ctx, q, true)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, string(m.Body))
		if i > 0 {
			if !m.DeliveryInfo.Redelivered || m.Headers["redelivered"] != true || m.Headers["h"] != "v" {
				t.Errorf("%s: requeued without redelivered marks: %+v %v", m.Body, m.DeliveryInfo, m.Headers)
			}
		}
	}
	if want := "fourth second first third"; join(order) != want {
		t.Errorf("order after requeue %q, want %q", join(order), want)
	}
	if n, _ := e.rdb.HLen(ctx, e.prefix+"unacked").Result(); n != 0 {
		t.Errorf("%d records left", n)
	}
	// restore_by_tag of an unknown tag deletes nothing and pushes nothing.
	st := ch.st
	if err := st.restoreByTag(ctx, "no-such-tag", false, nil); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.rdb.LLen(ctx, e.prefix+q).Result(); n != 0 {
		t.Errorf("restore of an unknown tag pushed %d", n)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// Item 33: x-expires sets a TTL on every priority key at each put.
func TestQueueExpires(t *testing.T) {
	e := newEnv(t, nil)
	ch := e.channel()
	ctx := ctxT(t)
	if _, err := ch.DeclareQueue(ctx, transport.Queue{Name: "ttlq", Arguments: map[string]any{"x-expires": 2000}}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctx, textMsg("x"), "", "ttlq", transport.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	ttl, err := e.rdb.PTTL(ctx, e.prefix+"ttlq").Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("PTTL %v %v, want in (0, 2s]", ttl, err)
	}
}

// The fanout channel name (items 11, 17) and a direct-to-fanout publish.
func TestFanoutTopics(t *testing.T) {
	o, err := parseOptions(transport.Config{VirtualHost: "/2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.fanoutTopic("exchange", ""); got != "/2.exchange" {
		t.Errorf("topic %q", got)
	}
	if got := o.fanoutTopic("fx", "k.*"); got != "/2.fx/k.*" {
		t.Errorf("topic %q", got)
	}
	o, _ = parseOptions(transport.Config{Options: map[string]any{"fanout_patterns": "false", "fanout_prefix": false}})
	if got := o.fanoutTopic("fx", "k"); got != "fx" {
		t.Errorf("topic without prefix and patterns %q", got)
	}
	o, _ = parseOptions(transport.Config{Options: map[string]any{"fanout_prefix": "/x{db}:"}})
	if got := o.fanoutTopic("fx", ""); got != "/x0:fx" {
		t.Errorf("custom prefix %q", got)
	}
}

// The sep option reads members such as "celery::celery" (item 23).
func TestSepOption(t *testing.T) {
	rows := parseTable([]string{"celery::celery", "bad", "a:b:c:d"}, ":")
	want := []channel.Row{{RoutingKey: "celery", Queue: "celery"}, {RoutingKey: "a", Pattern: "b", Queue: "c:d"}}
	if len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Errorf("rows %+v", rows)
	}
}

// score rounds up to a whole second: a record is never restored before
// its visibility timeout, at most a second after it.
func TestScoreRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1763733000, 0), "1763733000"},
		{time.Unix(1763733000, 1), "1763733001"},
		{time.Unix(1763733000, 999_999_999), "1763733001"},
	} {
		if got := score(tc.t); got != tc.want {
			t.Errorf("score(%v) = %s, want %s", tc.t.UnixNano(), got, tc.want)
		}
	}
}

// One pop of many messages writes every record in one HSET and one ZADD,
// leaves the index a skiplist with exactly the popped tags in it (the
// member the script adds to convert it is gone), and a pop of a few
// messages into a missing index leaves Redis's own choice alone.
func TestPopRecordsAndIndexEncoding(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	idxKey := e.prefix + "unacked_index"
	for _, tc := range []struct {
		n        int
		wantEnc  string
		dupFirst bool
	}{{5, "", false}, {40, "skiplist", false}, {40, "skiplist", true}} {
		e.rdb.Del(ctx, e.prefix+"unacked", idxKey)
		q := e.prefix + "encq"
		for i := 0; i < tc.n; i++ {
			tag := fmt.Sprintf("tag-%03d", i)
			if tc.dupFirst && i == 1 {
				tag = "tag-000" // two messages under one tag: the later record wins, as with one HSET each
			}
			env := fmt.Sprintf(`{"body": "eA==", "content-encoding": "binary", "content-type": "application/data", "headers": {}, "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "ex", "routing_key": "rk/%d"}, "delivery_mode": 2, "delivery_tag": %q, "priority": 0}}`, i, tag)
			e.rdb.LPush(ctx, q, env)
		}
		ps, bad, err := e.conn.pop(ctx, []string{q}, tc.n, true)
		if err != nil || bad != nil || len(ps) != tc.n {
			t.Fatalf("n=%d: pop %d messages, %v %v", tc.n, len(ps), bad, err)
		}
		tags := map[string]string{}
		for _, p := range ps {
			tags[p.tag] = string(p.raw)
		}
		members, err := e.rdb.ZRange(ctx, idxKey, 0, -1).Result()
		if err != nil || len(members) != len(tags) {
			t.Fatalf("n=%d: index holds %d members (%v), want %d", tc.n, len(members), err, len(tags))
		}
		for _, m := range members {
			raw, ok := tags[m]
			if !ok {
				t.Fatalf("n=%d: index member %q was not popped", tc.n, m)
			}
			rec, err := e.rdb.HGet(ctx, e.prefix+"unacked", m).Result()
			var parts []json.RawMessage
			if err != nil || json.Unmarshal([]byte(rec), &parts) != nil || len(parts) != 3 {
				t.Fatalf("n=%d: record of %s: %q %v", tc.n, m, rec, err)
			}
			if string(parts[0]) != raw || string(parts[1]) != `"ex"` || !strings.HasPrefix(string(parts[2]), `"rk\/`) {
				t.Errorf("n=%d: record of %s is %s", tc.n, m, rec)
			}
		}
		// "" stands for the small encoding: listpack, ziplist before Redis 7.
		enc, _ := e.rdb.ObjectEncoding(ctx, idxKey).Result()
		if small := enc == "listpack" || enc == "ziplist"; (tc.wantEnc == "" && !small) || (tc.wantEnc != "" && enc != tc.wantEnc) {
			t.Errorf("n=%d: index encoding %q, want %q", tc.n, enc, tc.wantEnc)
		}
	}
}

// An unacked hash or index of another type fails the pop script before it
// takes anything: every message stays in its list.
func TestPopWrongTypeRecordsTakesNothing(t *testing.T) {
	for _, bad := range []string{"unacked_index", "unacked"} {
		t.Run(bad, func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := ctxT(t)
			q := e.prefix + "wtq"
			e.rdb.Set(ctx, e.prefix+bad, "a string", 0)
			for i := 0; i < 40; i++ {
				e.rdb.LPush(ctx, q, fmt.Sprintf(`{"body": "", "properties": {"delivery_tag": "t%d"}}`, i))
			}
			_, _, err := e.conn.pop(ctx, []string{q}, 40, true)
			if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.Contains(err.Error(), "no message taken") {
				t.Errorf("pop: %v, want the WRONGTYPE error", err)
			}
			if n, _ := e.rdb.LLen(ctx, q).Result(); n != 40 {
				t.Errorf("%d of 40 messages left in the list", n)
			}
			// Without records the types do not matter.
			if ps, _, err := e.conn.pop(ctx, []string{q}, 40, false); err != nil || len(ps) != 40 {
				t.Errorf("pop without records: %d messages, %v", len(ps), err)
			}
		})
	}
	e := newEnv(t, nil)
	if _, _, err := e.conn.pop(ctxT(t), []string{e.prefix + "q"}, 1001, true); err == nil || !strings.Contains(err.Error(), "at most 1000") {
		t.Errorf("pop of 1001: %v", err)
	}
}
