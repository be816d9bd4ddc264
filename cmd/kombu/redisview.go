package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
)

// redisView reads Kombu's keys on a Redis broker for `queues` and `top`:
// the binding sets _kombu.binding.<exchange> (whose members name the
// queues), one list per queue and priority step, and the unacked hash and
// index. It only reads. The key layout follows the URL's transport
// options global_keyprefix, sep, priority_steps, unacked_key and
// unacked_index_key, as the transport does.
type redisView struct {
	rdb             redis.UniversalClient
	prefix, sep     string
	steps           []int
	unacked, index  string
	bindingPrefix   string
	bindingsPattern string
}

// redisQueue is one queue's state on Redis.
type redisQueue struct {
	Name string
	// ByStep holds the length of each priority step's list, in step order.
	ByStep []int64
	// Messages is the sum of ByStep.
	Messages int64
	// Unacked counts the unacked records that a restore would put back in
	// this queue; OldestUnacked is the oldest one's delivery time.
	Unacked       int
	OldestUnacked time.Time
	// Exchanges lists the exchanges with a binding to the queue.
	Exchanges []string
}

// redisSnapshot is what one pass over the keys found.
type redisSnapshot struct {
	Queues []redisQueue
	// Other counts the unacked records that route to none of Queues.
	Other int
	// Taken is when the pass began.
	Taken time.Time
}

func newRedisView(rawURL string) (*redisView, error) {
	eps, err := messaging.ParseURLs(rawURL)
	if err != nil {
		return nil, err
	}
	ep := eps[0]
	opt := func(k, def string) string {
		if v, ok := ep.Options[k]; ok {
			return v
		}
		return def
	}
	v := &redisView{prefix: opt("global_keyprefix", ""), sep: opt("sep", "\x06\x16"), steps: []int{0, 3, 6, 9}}
	v.unacked = v.prefix + opt("unacked_key", "unacked")
	v.index = v.prefix + opt("unacked_index_key", "unacked_index")
	v.bindingPrefix = v.prefix + "_kombu.binding."
	v.bindingsPattern = globEscape(v.bindingPrefix) + "*"
	if s, ok := ep.Options["priority_steps"]; ok {
		if v.steps, err = parseSteps(s); err != nil {
			return nil, err
		}
	}
	if v.rdb, err = redisClient(eps); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *redisView) Close() error { return v.rdb.Close() }

// redisClient builds a go-redis client for the first endpoint (sentinel:
// all of them), from Kombu's URL forms.
func redisClient(eps []messaging.Endpoint) (redis.UniversalClient, error) {
	ep := eps[0]
	db, err := strconv.Atoi(strings.TrimPrefix(firstNonEmpty(ep.VirtualHost, ep.Options["virtual_host"], "0"), "/"))
	if err != nil || db < 0 {
		return nil, fmt.Errorf("redis: the database must be a number, not %q", ep.VirtualHost)
	}
	var tlsConf *tls.Config
	if ep.TLS {
		if tlsConf, err = redisTLS(ep); err != nil {
			return nil, err
		}
	}
	switch ep.Transport {
	case "sentinel":
		var addrs []string
		for _, e := range eps {
			addrs = append(addrs, net.JoinHostPort(firstNonEmpty(e.Hostname, "127.0.0.1"), strconv.Itoa(portOr(e.Port, 26379))))
		}
		master := ep.Options["master_name"]
		if master == "" {
			return nil, fmt.Errorf("redis: sentinel: the master_name option is required")
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs,
			Username: ep.UserID, Password: ep.Password, DB: db, TLSConfig: tlsConf}), nil
	case "redis", "rediss":
	default:
		return nil, fmt.Errorf("%s:// is not a Redis URL", ep.Scheme)
	}
	o := &redis.Options{Username: ep.UserID, Password: ep.Password, DB: db, TLSConfig: tlsConf}
	switch {
	case strings.HasPrefix(ep.Hostname, "/"):
		o.Network, o.Addr = "unix", ep.Hostname
	case ep.URIPrefix == "redis" && ep.Scheme != "redis":
		return nil, fmt.Errorf("redis: give the socket path as redis+socket:///path/to/redis.sock")
	default:
		o.Addr = net.JoinHostPort(firstNonEmpty(ep.Hostname, "127.0.0.1"), strconv.Itoa(portOr(ep.Port, 6379)))
	}
	return redis.NewClient(o), nil
}

// redisTLS follows the transport's rules: verify unless
// ssl_cert_reqs=none, with ssl_ca_certs and a client certificate if given.
func redisTLS(ep messaging.Endpoint) (*tls.Config, error) {
	c := &tls.Config{ServerName: ep.Hostname, MinVersion: tls.VersionTLS12}
	if strings.EqualFold(ep.SSL["ssl_cert_reqs"], "none") || strings.EqualFold(ep.SSL["ssl_cert_reqs"], "CERT_NONE") {
		c.InsecureSkipVerify = true
	}
	if f := ep.SSL["ssl_ca_certs"]; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("redis: ssl_ca_certs: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		c.RootCAs.AppendCertsFromPEM(pem)
	}
	if cf, kf := ep.SSL["ssl_certfile"], ep.SSL["ssl_keyfile"]; cf != "" {
		cert, err := tls.LoadX509KeyPair(cf, firstNonEmpty(kf, cf))
		if err != nil {
			return nil, fmt.Errorf("redis: ssl_certfile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func portOr(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// parseSteps reads priority_steps: "0,3,6,9" or "[0, 3, 6, 9]".
func parseSteps(s string) ([]int, error) {
	var steps []int
	for _, f := range strings.Split(strings.Trim(s, "[] "), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("redis: priority_steps %q: want a list of integers", s)
		}
		steps = append(steps, n)
	}
	sort.Ints(steps)
	return steps, nil
}

// globEscape escapes the glob characters of a SCAN MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// bindings reads every binding set: exchange -> rows.
func (v *redisView) bindings(ctx context.Context) (map[string][]channel.Row, error) {
	out := map[string][]channel.Row{}
	iter := v.rdb.Scan(ctx, 0, v.bindingsPattern, 500).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		members, err := v.rdb.SMembers(ctx, key).Result()
		if err != nil {
			return nil, err
		}
		ex := strings.TrimPrefix(key, v.bindingPrefix)
		for _, m := range members {
			parts := strings.Split(m, v.sep)
			if len(parts) != 3 {
				continue // not Kombu's member format
			}
			out[ex] = append(out[ex], channel.Row{RoutingKey: parts[0], Pattern: parts[1], Queue: parts[2]})
		}
	}
	return out, iter.Err()
}

// stepKey is Kombu's _q_for_pri: the queue name for step 0, else
// queue+sep+step, prefixed.
func (v *redisView) stepKey(queue string, step int) string {
	if step == 0 {
		return v.prefix + queue
	}
	return v.prefix + queue + v.sep + strconv.Itoa(step)
}

// snapshot reads the named queues, or with no names every queue of a
// binding set.
func (v *redisView) snapshot(ctx context.Context, names []string) (redisSnapshot, error) {
	snap := redisSnapshot{Taken: time.Now()}
	table, err := v.bindings(ctx)
	if err != nil {
		return snap, err
	}
	exchangesOf := map[string][]string{}
	for ex, rows := range table {
		for _, r := range rows {
			if !contains(exchangesOf[r.Queue], ex) {
				exchangesOf[r.Queue] = append(exchangesOf[r.Queue], ex)
			}
		}
	}
	if len(names) == 0 {
		for q := range exchangesOf {
			names = append(names, q)
		}
		sort.Strings(names)
	}
	pipe := v.rdb.Pipeline()
	lens := make([][]*redis.IntCmd, len(names))
	for i, q := range names {
		for _, s := range v.steps {
			lens[i] = append(lens[i], pipe.LLen(ctx, v.stepKey(q, s)))
		}
	}
	if len(names) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return snap, err
		}
	}
	index := map[string]*redisQueue{}
	for i, q := range names {
		rq := redisQueue{Name: q, Exchanges: exchangesOf[q]}
		sort.Strings(rq.Exchanges)
		for _, c := range lens[i] {
			rq.ByStep = append(rq.ByStep, c.Val())
			rq.Messages += c.Val()
		}
		snap.Queues = append(snap.Queues, rq)
	}
	for i := range snap.Queues {
		index[snap.Queues[i].Name] = &snap.Queues[i]
	}
	other, err := v.unackedInto(ctx, table, index)
	snap.Other = other
	return snap, err
}

// unackedInto counts the unacked records per queue, attributing each the
// way a restore would route it back: exchange "" to the queue named by the
// routing key, otherwise the bindings that match as direct, else as topic
// (Redis does not record exchange types; Kombu restores through an
// exchange it does not know as direct). It returns the records that reach
// none of the queues in index.
func (v *redisView) unackedInto(ctx context.Context, table map[string][]channel.Row, index map[string]*redisQueue) (int, error) {
	scores := map[string]float64{}
	zs, err := v.rdb.ZRangeWithScores(ctx, v.index, 0, -1).Result()
	if err != nil && err != redis.Nil {
		return 0, err
	}
	for _, z := range zs {
		if tag, ok := z.Member.(string); ok {
			scores[tag] = z.Score
		}
	}
	unrouted := 0
	var cursor uint64
	for {
		kvs, next, err := v.rdb.HScan(ctx, v.unacked, cursor, "*", 1000).Result()
		if err != nil && err != redis.Nil {
			return 0, err
		}
		for i := 0; i+1 < len(kvs); i += 2 {
			ex, rk, ok := recordRoute(kvs[i+1])
			if !ok {
				unrouted++
				continue
			}
			hit := false
			for _, q := range routeRecord(table, ex, rk) {
				rq := index[q]
				if rq == nil {
					continue
				}
				hit = true
				rq.Unacked++
				if s, ok := scores[kvs[i]]; ok {
					t := time.Unix(0, int64(s*float64(time.Second)))
					if rq.OldestUnacked.IsZero() || t.Before(rq.OldestUnacked) {
						rq.OldestUnacked = t
					}
				}
			}
			if !hit {
				unrouted++
			}
		}
		if cursor = next; cursor == 0 {
			return unrouted, nil
		}
	}
}

// recordRoute reads the exchange and routing key of an unacked record,
// Kombu's JSON array [envelope, exchange, routing_key].
func recordRoute(raw string) (ex, rk string, ok bool) {
	var rec []json.RawMessage
	if json.Unmarshal([]byte(raw), &rec) != nil || len(rec) < 3 {
		return "", "", false
	}
	if json.Unmarshal(rec[1], &ex) != nil || json.Unmarshal(rec[2], &rk) != nil {
		return "", "", false
	}
	return ex, rk, true
}

// routeRecord returns the queues a restore sends a record back to.
func routeRecord(table map[string][]channel.Row, ex, rk string) []string {
	if ex == "" {
		return []string{rk}
	}
	rows := table[ex]
	if qs := channel.Lookup(transport.Direct, rows, rk, nil, "", nil); len(qs) > 0 {
		return qs
	}
	return channel.Lookup(transport.Topic, rows, rk, nil, "", nil)
}

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// age is how long ago t was, whole seconds; 0 for the zero time.
func age(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return math.Max(0, math.Round(now.Sub(t).Seconds()))
}
