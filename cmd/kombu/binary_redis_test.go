package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/messaging"
)

// redisTest is a test's view of the test Redis: every key the CLI writes
// carries the test's own global_keyprefix, so the shared server's other
// users (and their unacked records) never meet this test's.
type redisTest struct {
	url    string // the broker URL the CLI gets, with the prefix
	prefix string
	rdb    *redis.Client
}

func newRedisTest(t *testing.T) *redisTest {
	t.Helper()
	base := testBroker(t, "Redis", "KOMBU_TEST_REDIS_URL")
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("KOMBU_TEST_REDIS_URL: %v", err)
	}
	rt := &redisTest{prefix: uniqueName("kombu-cli") + ".", rdb: redis.NewClient(opts)}
	rt.url = withQuery(base, "global_keyprefix="+rt.prefix)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rt.rdb.Scan(ctx, 0, globEscape(rt.prefix)+"*", 500).Iterator()
		for iter.Next(ctx) {
			rt.rdb.Del(ctx, iter.Val())
		}
		rt.rdb.Close()
	})
	return rt
}

// depth is the number of messages in queue's lists (every priority step).
func (rt *redisTest) depth(t *testing.T, queue string) int64 {
	t.Helper()
	var n int64
	for _, s := range []string{"", "\x06\x163", "\x06\x166", "\x06\x169"} {
		c, err := rt.rdb.LLen(context.Background(), rt.prefix+queue+s).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// unacked counts the unacked records (all of them: the prefix makes them
// this test's).
func (rt *redisTest) unacked(t *testing.T) int64 {
	t.Helper()
	n, err := rt.rdb.HLen(context.Background(), rt.prefix+"unacked").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRedisConsumeCountExact: consume --count N takes exactly N messages
// out of the queue, whatever the prefetch and the settle mode, and leaves
// no unacked record behind.
func TestRedisConsumeCountExact(t *testing.T) {
	rt := newRedisTest(t)
	q := "count"
	mustRun(t, nil, "publish", `{"n": 1}`, "--url", rt.url, "--routing-key", q, "--count", "200", "--serializer", "json")
	want := int64(200)
	steps := []struct {
		args    []string
		printed int
		taken   int64
	}{
		{[]string{"--count", "1"}, 1, 1},
		{[]string{"--count", "50", "--prefetch", "100"}, 50, 50},
		{[]string{"--count", "5", "--requeue"}, 5, 0},
		{[]string{"--count", "3", "--no-ack"}, 3, 3},
		{[]string{"--count", "4", "--reject"}, 4, 4},
	}
	for _, s := range steps {
		args := append([]string{"consume", "--url", rt.url, "--queue", q, "--json", "--timeout", "30s"}, s.args...)
		r := mustRun(t, nil, args...)
		lines := jsonLines[consumedJSON](t, r.stdout)
		want -= s.taken
		if len(lines) != s.printed {
			t.Errorf("consume %v printed %d messages, want %d", s.args, len(lines), s.printed)
		}
		if got := rt.depth(t, q); got != want {
			t.Errorf("after consume %v the queue holds %d, want exactly %d", s.args, got, want)
		}
		if n := rt.unacked(t); n != 0 {
			t.Errorf("after consume %v: %d unacked record(s) left", s.args, n)
		}
	}
	// The text form ends with the count on stderr.
	r := mustRun(t, nil, "consume", "--url", rt.url, "--queue", q, "--count", "2")
	if !strings.Contains(r.stderr, "consumed 2 of 2 message(s)") || strings.Count(r.stdout, `{"n":1}`) != 2 {
		t.Errorf("consume --count 2:\n%s", r)
	}
}

// TestRedisPurgeFlagsAfterNames is the case: the flag after the
// queue name is a flag, not two more queue names.
func TestRedisPurgeFlagsAfterNames(t *testing.T) {
	rt := newRedisTest(t)
	mustRun(t, nil, "publish", "x", "--url", rt.url, "--routing-key", "opsq", "--count", "3")
	r := mustRun(t, nil, "purge", "opsq", "--url", rt.url)
	if r.stdout != "opsq: purged 3 message(s)\n" {
		t.Errorf("purge opsq --url:\n%s", r)
	}
	p := decodeJSON[purgedJSON](t, mustRun(t, nil, "purge", "opsq", "--json", "--url", rt.url).stdout)
	if len(p.Purged) != 1 || p.Purged[0].Queue != "opsq" || p.Purged[0].Messages != 0 {
		t.Errorf("purge --json: %+v", p)
	}
}

// TestRedisMandatory: an exchange that routes nowhere returns a mandatory
// message: exit 1, and the JSON says how many.
func TestRedisMandatory(t *testing.T) {
	rt := newRedisTest(t)
	r := kombu(t, nil, "publish", "--url", rt.url, "--exchange", "ex", "--routing-key", "nowhere", "--mandatory", "--count", "2", "--json", "x")
	p := decodeJSON[publishedJSON](t, r.stdout)
	if r.code != 1 || p.Returned != 2 || !strings.Contains(r.stderr, "returned by the broker: 312 NO_ROUTE") {
		t.Errorf("unroutable --mandatory:\n%s", r)
	}
	r = mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "ex", "--routing-key", "k", "--declare-queue", "q",
		"--mandatory", "--confirm", "--json", "x")
	if p := decodeJSON[publishedJSON](t, r.stdout); p.Returned != 0 || !p.Confirmed || rt.depth(t, "q") != 1 {
		t.Errorf("routable --mandatory --confirm: %+v, depth %d", p, rt.depth(t, "q"))
	}
}

// TestRedisEmptyBindingKey: --binding-key ” binds with an empty key
// instead of falling back to the queue name.
func TestRedisEmptyBindingKey(t *testing.T) {
	rt := newRedisTest(t)
	ctx := context.Background()
	mustRun(t, nil, "consume", "--url", rt.url, "--queue", "q", "--declare", "--exchange", "ex", "--binding-key", "", "--timeout", "100ms")
	mustRun(t, nil, "consume", "--url", rt.url, "--queue", "q2", "--declare", "--exchange", "ex", "--timeout", "100ms")
	members, err := rt.rdb.SMembers(ctx, rt.prefix+"_kombu.binding.ex").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(members)
	want := []string{"\x06\x16\x06\x16q", "q2\x06\x16\x06\x16q2"} // Kombu: routing key, pattern (empty for direct), queue
	if !slices.Equal(members, want) {
		t.Fatalf("bindings %q, want %q", members, want)
	}
	mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "ex", "--routing-key", "", "--mandatory", "empty key")
	r := mustRun(t, nil, "consume", "--url", rt.url, "--queue", "q", "--count", "1", "--json", "--timeout", "30s")
	if m := decodeJSON[consumedJSON](t, r.stdout); m.Body != "empty key" || m.Exchange != "ex" {
		t.Errorf("consumed %+v", m)
	}
}

// TestRedisQueuesList: with no names, queues lists the queues of Kombu's
// binding sets, with the size of each priority step and the unacked
// records (a consumer holds one while the list is taken).
func TestRedisQueuesList(t *testing.T) {
	rt := newRedisTest(t)
	for _, p := range []string{"0", "0", "9"} {
		mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "media", "--routing-key", "video",
			"--declare-queue", "video", "--priority", p, "m"+p)
	}
	mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "media", "--routing-key", "audio", "--declare-queue", "audio", "a")

	// A consumer of this process holds one message unacknowledged.
	ctx := context.Background()
	conn, err := messaging.NewConnection(rt.url, messaging.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var held []*messaging.Message
	cons, err := messaging.NewConsumer(conn, messaging.ConsumerOptions{
		Queues:        []messaging.Queue{{Name: "video", NoDeclare: true}},
		OnMessage:     func(m *messaging.Message) { held = append(held, m) },
		PrefetchCount: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Consume(ctx); err != nil {
		t.Fatal(err)
	}
	for len(held) == 0 {
		if err := conn.DrainEvents(ctx); err != nil {
			t.Fatal(err)
		}
	}

	out := decodeJSON[queuesJSON](t, mustRun(t, nil, "queues", "--url", rt.url, "--json").stdout)
	if out.Transport != "redis" || out.Source != "bindings" || len(out.Queues) != 2 {
		t.Fatalf("queues --json: %+v", out)
	}
	audio, video := out.Queues[0], out.Queues[1]
	if audio.Name != "audio" || audio.Messages != 1 || *audio.Unacked != 0 || !slices.Equal(audio.Exchanges, []string{"media"}) {
		t.Errorf("audio: %+v", audio)
	}
	// Kombu serves the lower priority number first: the held message is a
	// step-0 one.
	wantBy := map[string]int64{"0": 1, "3": 0, "6": 0, "9": 1}
	if video.Name != "video" || video.Messages != 2 || fmt.Sprint(video.ByPriority) != fmt.Sprint(wantBy) ||
		video.Unacked == nil || *video.Unacked != 1 || video.OldestUnackedS == nil {
		t.Errorf("video: %+v", video)
	}
	r := mustRun(t, nil, "queues", "--url", rt.url)
	if !strings.Contains(r.stdout, "by priority 0/3/6/9") || !strings.Contains(r.stdout, "1/0/0/1") || r.stderr != "" {
		t.Errorf("queues:\n%s", r)
	}

	if err := conn.Close(); err != nil { // restores the held message
		t.Fatal(err)
	}
	out = decodeJSON[queuesJSON](t, mustRun(t, nil, "queues", "video", "--url", rt.url, "--json").stdout)
	if q := out.Queues[0]; len(out.Queues) != 1 || q.Messages != 3 || *q.Unacked != 0 || out.Source != "named" {
		t.Errorf("queues video after the consumer closed: %+v", out)
	}
}

// TestRedisTopJSON: top --json streams one frame per refresh, with the
// change of depth from the second on.
func TestRedisTopJSON(t *testing.T) {
	rt := newRedisTest(t)
	mustRun(t, nil, "publish", "--url", rt.url, "--exchange", "ex", "--routing-key", "k", "--declare-queue", "q", "--count", "5", "x")
	r := mustRun(t, nil, "top", "--url", rt.url, "--iterations", "3", "--interval", "100ms", "--json")
	frames := jsonLines[topFrame](t, r.stdout)
	if len(frames) != 3 {
		t.Fatalf("top --iterations 3 gave %d frames:\n%s", len(frames), r)
	}
	for i, f := range frames {
		if f.Transport != "redis" || f.TrendOf != "net_per_s" || len(f.Queues) != 1 || f.Queues[0].Queue != "q" || f.Queues[0].Ready != 5 {
			t.Fatalf("frame %d: %+v", i, f)
		}
		if net := f.Queues[0].NetPerS; (i == 0) != (net == nil) || (net != nil && *net != 0) {
			t.Errorf("frame %d: net_per_s %v", i, net)
		}
	}
	if len(frames[2].Queues[0].Trend) != 2 {
		t.Errorf("trend after 3 frames: %v", frames[2].Queues[0].Trend)
	}
}
