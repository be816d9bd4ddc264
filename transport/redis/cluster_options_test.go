package redis

import (
	"slices"
	"strings"
	"testing"

	"github.com/kombu-go/kombu/transport"
)

func TestClusterParseConfig(t *testing.T) {
	o, err := ParseConfig(transport.Config{Scheme: "redis+cluster", Hostname: "10.0.0.1:7000,10.0.0.2,10.0.0.1:7000",
		Options: map[string]any{"publish_wait_replicas": "1", "publish_wait_timeout": "2.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:7000", "10.0.0.2:6379"}; !slices.Equal(o.ClusterAddrs, want) {
		t.Errorf("ClusterAddrs = %q, want %q", o.ClusterAddrs, want)
	}
	if o.PublishWaitReplicas != 1 || o.PublishWaitTimeout.Seconds() != 2.5 {
		t.Errorf("wait options = %d, %v", o.PublishWaitReplicas, o.PublishWaitTimeout)
	}
	r, err := o.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if !r.cluster || r.addr != "10.0.0.1:7000" || r.waitReplicas != 1 {
		t.Errorf("resolved: cluster=%v addr=%q waitReplicas=%d", r.cluster, r.addr, r.waitReplicas)
	}
	for _, tc := range []struct {
		cfg  transport.Config
		want string
	}{
		{transport.Config{Scheme: "redis+cluster", Hostname: "h:1", VirtualHost: "/2"}, "only database 0"},
		{transport.Config{Scheme: "redis+cluster", Hostname: ""}, "no node address"},
		{transport.Config{Scheme: "redis+cluster", Hostname: "h:1", Options: map[string]any{"publish_wait_replica": 1}}, "publish_wait_replica"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewWithOptions(Options{ClusterAddrs: []string{"h:1"}, SentinelAddrs: []string{"s:1"}, MasterName: "m"}); err == nil {
		t.Error("cluster and sentinel together: no error")
	}
}

// TestClusterKeyLayout checks that every key of a queue hashes to one slot
// (the queue's), whatever the queue name and prefix hold, and that the
// single-node layout is Kombu's.
func TestClusterKeyLayout(t *testing.T) {
	for _, tc := range []struct{ prefix, queue string }{
		{"", "celery"}, {"app:", "q"}, {"p{x}", "q"}, {"", "a}b"}, {"", "{x}"},
	} {
		r, err := Options{ClusterAddrs: []string{"h:1"}, GlobalKeyPrefix: tc.prefix}.resolve()
		if err != nil {
			t.Fatal(err)
		}
		q := r.forQueue(tc.queue)
		keys := append(r.stepKeys(tc.queue), q.key(q.unackedKey), q.key(q.unackedIndexKey), q.key(q.unackedMutexKey),
			q.registryKey(), q.processingKey("id"), q.deliveringKey("id"))
		for _, k := range keys[1:] {
			if slotOf(k) != slotOf(keys[0]) {
				t.Errorf("prefix %q queue %q: %q in slot %d, %q in %d", tc.prefix, tc.queue, k, slotOf(k), keys[0], slotOf(keys[0]))
			}
		}
		if r.forQueue(tc.queue) != q || q.forQueue(tc.queue) != q || q.forQueue("other").unackedKey != "{other}:unacked" {
			t.Errorf("forQueue caches or nests wrongly: %q", q.forQueue("other").unackedKey)
		}
	}
	single, err := Options{}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if got := single.stepKeys("celery"); !slices.Equal(got, []string{"celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169"}) {
		t.Errorf("single-node keys = %q", got)
	}
	if single.forQueue("celery") != single {
		t.Error("forQueue on a single node is not the options themselves")
	}
}

// TestSlotOf checks the hash slots against values Redis's CLUSTER KEYSLOT
// gives (and the hash tag rules).
func TestSlotOf(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "hello": 866, "": 0,
		"{user1000}.following": slotOf("user1000"), "foo{}{bar}": slotOf("foo{}{bar}"), "{foo}": 12182,
	} {
		if got := slotOf(key); got != want {
			t.Errorf("slotOf(%q) = %d, want %d", key, got, want)
		}
	}
	if slotOf("foo{}{bar}") == slotOf("bar") {
		t.Error("an empty tag must hash the whole key")
	}
}
