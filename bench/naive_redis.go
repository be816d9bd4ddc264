package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// NaiveRedisResult is the baseline `kombu bench --url redis://` runs beside
// the hub in the same process and on the same Redis.
type NaiveRedisResult struct {
	ConsumePerSec float64 `json:"consume_per_s"`
	P50us         float64 `json:"p50_us"`
	P99us         float64 `json:"p99_us"`
	Goroutines    int     `json:"goroutines"`
	// PlainP50us and PlainP99us are the round trips of the same loop with
	// no unacked record (a plain go-redis BRPOP loop, which loses the
	// message in flight when it dies): the floor of one round trip.
	PlainP50us float64 `json:"plain_p50_us,omitempty"`
	PlainP99us float64 `json:"plain_p99_us,omitempty"`
}

// naiveRedis is the obvious Go consumer of Kombu's Redis queues: one
// goroutine per queue blocked in BRPOP through go-redis, which writes
// Kombu's unacked record (ZADD unacked_index + HSET unacked, one pipeline)
// before the callback and removes it on ack (ZREM + HDEL), as Kombu's ack
// emulation does.
type naiveRedis struct {
	rdb    goredis.UniversalClient
	queues []string
	// keys are the list key of a queue and the keys of its unacked
	// records (Kombu's on one node, the transport's on a cluster).
	keys func(queue string) (list, index, records string)
	// deliver is called on the queue's goroutine after the record is written.
	deliver func(queue string, m *transport.Message)
	// plain skips the unacked record and its removal.
	plain atomic.Bool
	wg    sync.WaitGroup
	err   atomic.Pointer[error]
}

// benchRedis is a go-redis client of a bench URL and the key layout the
// transport uses there: one node for a redis URL (Kombu's keys); for a
// redis+cluster URL a ClusterClient (a pool per node, each command routed
// to its key's master) and the cluster layout, where each queue's list and
// unacked records carry the queue's hash tag.
type benchRedis struct {
	rdb     goredis.UniversalClient
	cluster bool
	prefix  string // global_keyprefix, on a cluster
}

// newBenchRedis connects with a pool of poolSize connections (per node);
// blocking lifts the read timeout (BRPOP).
func newBenchRedis(url string, poolSize int, blocking bool) (benchRedis, error) {
	if isClusterURL(url) {
		t, err := parseCluster(url)
		if err != nil {
			return benchRedis{}, err
		}
		return benchRedis{rdb: t.client(poolSize, blocking), cluster: true, prefix: t.prefix}, nil
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return benchRedis{}, err
	}
	opt.PoolSize = poolSize
	if blocking {
		opt.ReadTimeout = -1
	}
	return benchRedis{rdb: goredis.NewClient(opt)}, nil
}

// list is the key of queue's list.
func (r benchRedis) list(queue string) string {
	if r.cluster {
		return r.prefix + "{" + queue + "}"
	}
	return queue
}

// records are the keys of the unacked records of queue's messages.
func (r benchRedis) records(queue string) (index, hash string) {
	if r.cluster {
		return r.list(queue) + ":unacked_index", r.list(queue) + ":unacked"
	}
	return "unacked_index", "unacked"
}

// newNaiveRedis connects the naive consumer: to one node for a redis URL;
// for a redis+cluster URL through a ClusterClient, each BRPOP on its
// queue's master, writing the records where the transport's cluster layout
// keeps them.
func newNaiveRedis(url string, queues []string) (*naiveRedis, error) {
	r, err := newBenchRedis(url, len(queues)+4, true)
	if err != nil {
		return nil, fmt.Errorf("bench: naive baseline: %w", err)
	}
	return &naiveRedis{rdb: r.rdb, queues: queues, keys: func(q string) (string, string, string) {
		index, hash := r.records(q)
		return r.list(q), index, hash
	}}, nil
}

func (n *naiveRedis) start(ctx context.Context) {
	for _, q := range n.queues {
		n.wg.Add(1)
		list, index, records := n.keys(q)
		go func() {
			defer n.wg.Done()
			for ctx.Err() == nil {
				kv, err := n.rdb.BRPop(ctx, time.Second, list).Result()
				if errors.Is(err, goredis.Nil) {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						n.err.CompareAndSwap(nil, &err)
					}
					return
				}
				m, err := decodeKombu([]byte(kv[1]))
				if err != nil {
					n.err.CompareAndSwap(nil, &err)
					return
				}
				if n.plain.Load() {
					n.deliver(q, m)
					continue
				}
				tag := m.DeliveryInfo.DeliveryTag
				record := "[" + kv[1] + `, "", "` + q + `"]`
				pipe := n.rdb.TxPipeline()
				pipe.ZAdd(ctx, index, goredis.Z{Score: float64(time.Now().UnixNano()) / 1e9, Member: tag})
				pipe.HSet(ctx, records, tag, record)
				if _, err := pipe.Exec(ctx); err != nil {
					if ctx.Err() == nil {
						n.err.CompareAndSwap(nil, &err)
					}
					return
				}
				n.deliver(q, m)
				pipe = n.rdb.TxPipeline()
				pipe.ZRem(ctx, index, tag)
				pipe.HDel(ctx, records, tag)
				if _, err := pipe.Exec(ctx); err != nil && ctx.Err() == nil {
					n.err.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
}

func (n *naiveRedis) stop(cancel context.CancelFunc) error {
	cancel()
	n.wg.Wait()
	n.rdb.Close()
	if p := n.err.Load(); p != nil {
		return *p
	}
	return nil
}

// runNaiveRedis consumes the messages already waiting in queues with the
// naive consumer, then measures latency as RunMessaging does; publish sends
// one message to queue i%busy.
func runNaiveRedis(ctx context.Context, url string, queues []string, messages, latency int,
	publish func(ctx context.Context, queue string) error) (NaiveRedisResult, error) {
	var res NaiveRedisResult
	n, err := newNaiveRedis(url, queues)
	if err != nil {
		return res, err
	}
	var got atomic.Int64
	arrived := make(chan time.Time, 1)
	var measuring atomic.Bool
	n.deliver = func(string, *transport.Message) {
		got.Add(1)
		if measuring.Load() {
			select {
			case arrived <- time.Now():
			default:
			}
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	start := time.Now()
	n.start(cctx)
	for got.Load() < int64(messages) {
		if p := n.err.Load(); p != nil {
			n.stop(cancel)
			return res, *p
		}
		if ctx.Err() != nil {
			n.stop(cancel)
			return res, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	res.ConsumePerSec = float64(messages) / time.Since(start).Seconds()
	res.Goroutines = len(queues)
	measuring.Store(true)
	measure := func() ([]float64, error) {
		samples := make([]float64, 0, latency)
		for i := 0; i < latency; i++ {
			t0 := time.Now()
			if err := publish(ctx, queues[0]); err != nil {
				return nil, err
			}
			select {
			case t1 := <-arrived:
				samples = append(samples, float64(t1.Sub(t0).Nanoseconds())/1e3)
			case <-time.After(10 * time.Second):
				return nil, errors.New("bench: naive baseline: a message did not arrive within 10 s")
			}
		}
		return samples, nil
	}
	samples, err := measure()
	if err != nil {
		n.stop(cancel)
		return res, err
	}
	res.P50us, res.P99us = Percentile(samples, 50), Percentile(samples, 99)
	n.plain.Store(true)
	if samples, err = measure(); err != nil {
		n.stop(cancel)
		return res, err
	}
	res.PlainP50us, res.PlainP99us = Percentile(samples, 50), Percentile(samples, 99)
	return res, n.stop(cancel)
}

// redisClients returns Redis' connected_clients for a redis URL, or -1 when
// the URL is not redis or the server cannot tell. The asking connection is
// counted in both readings, so deltas cancel it out.
func redisClients(ctx context.Context, url string) int {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return -1
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	info, err := rdb.InfoMap(ctx, "clients").Result()
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(info["Clients"]["connected_clients"])
	if err != nil {
		return -1
	}
	return n
}

// newTag returns a uuid4-shaped delivery tag.
func newTag() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
