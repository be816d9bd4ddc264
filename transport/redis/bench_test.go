package redis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/transport"
)

// benchBody is the anchors' message: {"i": n, "payload": 64 bytes}.
func benchBody(i int) []byte {
	return fmt.Appendf(nil, `{"i": %d, "payload": "%064d"}`, i, 0)
}

func benchMsg(i int) *transport.Message {
	return &transport.Message{Body: benchBody(i), ContentType: "application/json", ContentEncoding: "utf-8"}
}

// prepublish fills queue with n messages through PublishBatch.
func prepublish(b *testing.B, ch *Channel, queue string, n int) {
	b.Helper()
	ctx := context.Background()
	reqs := make([]PublishRequest, 0, 1000)
	for i := 0; i < n; i++ {
		reqs = append(reqs, PublishRequest{Message: benchMsg(i), RoutingKey: queue})
		if len(reqs) == cap(reqs) || i == n-1 {
			if err := ch.PublishBatch(ctx, reqs); err != nil {
				b.Fatal(err)
			}
			reqs = reqs[:0]
		}
	}
}

// consumeAll consumes n messages with prefetch 100 from queues, acking each
// in the callback, and returns the rate.
func consumeAll(b *testing.B, ch *Channel, queues []string, n int) float64 {
	b.Helper()
	ctx := context.Background()
	if err := ch.Qos(ctx, 100); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	for _, q := range queues {
		_, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: q}, func(m *transport.Message) {
			ch.Ack(m.DeliveryInfo.DeliveryTag)
			if got.Add(1) == int64(n) {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("consumed %d of %d", got.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkConsumeAck is consume + ack with prefetch 100 on one queue; the
// anchors' bar is Kombu's ~2,400 msg/s and a naive goroutine-per-queue
// go-redis consumer's ~17,000 (BenchmarkNaiveConsumeAck, same run).
func BenchmarkConsumeAck(b *testing.B) {
	e := newEnv(b, nil)
	ch := e.channel()
	n := max(b.N, 1000)
	prepublish(b, ch, "bench", n)
	b.ResetTimer()
	rate := consumeAll(b, ch, []string{"bench"}, n)
	b.StopTimer()
	b.ReportMetric(rate, "msg/s")
	hubRate.Store(rate)
	ch.Close()
}

// BenchmarkConsumeAck1000Queues is the same with one consumer on 1000
// queues, messages on one of them (anchors: Kombu ~196 msg/s).
func BenchmarkConsumeAck1000Queues(b *testing.B) {
	e := newEnv(b, nil)
	ch := e.channel()
	n := max(b.N, 1000)
	queues := make([]string, 1000)
	for i := range queues {
		queues[i] = fmt.Sprintf("q%04d", i)
	}
	prepublish(b, ch, queues[777], n)
	b.ResetTimer()
	rate := consumeAll(b, ch, queues, n)
	b.StopTimer()
	b.ReportMetric(rate, "msg/s")
	ch.Close()
}

// BenchmarkPublish publishes one message per call (LPUSH, one round trip).
func BenchmarkPublish(b *testing.B) {
	e := newEnv(b, nil)
	ch := e.channel()
	ctx := context.Background()
	m := benchMsg(1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := ch.Publish(ctx, m, "", "pub", transport.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkPublishBatch publishes through PublishBatch, 100 per pipeline.
func BenchmarkPublishBatch(b *testing.B) {
	e := newEnv(b, nil)
	ch := e.channel()
	ctx := context.Background()
	reqs := make([]PublishRequest, 100)
	for i := range reqs {
		reqs[i] = PublishRequest{Message: benchMsg(i), RoutingKey: "pubb"}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; sent += len(reqs) {
		if err := ch.PublishBatch(ctx, reqs[:min(len(reqs), b.N-sent)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkNaiveConsumeAck is the anchors' naive baseline: one goroutine
// per queue doing BRPOP through go-redis, writing Kombu's unacked record
// (MULTI ZADD+HSET) before handing the message over, and acking it (MULTI
// ZREM+HDEL). It reports its rate and, when run after BenchmarkConsumeAck
// in the same process, the ratio.
func BenchmarkNaiveConsumeAck(b *testing.B) {
	e := newEnv(b, nil)
	ch := e.channel()
	n := max(b.N, 1000)
	prepublish(b, ch, "naive", n)
	rdb := e.rdb
	key := e.prefix + "naive"
	unacked, index := e.prefix+"unacked", e.prefix+"unacked_index"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs := make(chan [2]string, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	b.ResetTimer()
	start := time.Now()
	go func() { // the goroutine of the one queue
		defer wg.Done()
		for {
			kv, err := rdb.BRPop(ctx, time.Second, key).Result()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			m, err := decodeEnvelope([]byte(kv[1]))
			if err != nil {
				b.Error(err)
				return
			}
			tag := m.DeliveryInfo.DeliveryTag
			rec := recordValue([]byte(kv[1]), m.DeliveryInfo.Exchange, m.DeliveryInfo.RoutingKey)
			_, err = rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.ZAdd(ctx, index, goredis.Z{Score: float64(time.Now().UnixNano()) / 1e9, Member: tag})
				p.HSet(ctx, unacked, tag, rec)
				return nil
			})
			if err != nil {
				return
			}
			select {
			case msgs <- [2]string{tag, kv[1]}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		m := <-msgs
		_, err := rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.ZRem(ctx, index, m[0])
			p.HDel(ctx, unacked, m[0])
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(rate, "msg/s")
	naiveRate.Store(rate)
	if hub := hubRate.Load(); hub > 0 {
		b.ReportMetric(hub/rate, "hub/naive")
	}
}

var hubRate, naiveRate atomicFloat

type atomicFloat struct{ v atomic.Uint64 }

func (f *atomicFloat) Store(x float64) { f.v.Store(uint64(x * 1000)) }
func (f *atomicFloat) Load() float64   { return float64(f.v.Load()) / 1000 }

// BenchmarkNaivePublish is go-redis LPUSH of a pre-encoded envelope, one
// per round trip: the floor under BenchmarkPublish.
func BenchmarkNaivePublish(b *testing.B) {
	e := newEnv(b, nil)
	ctx := context.Background()
	m := benchMsg(1)
	m.DeliveryInfo.DeliveryTag = "0e206b75-c390-4bed-a4ef-1c3f40cb2020"
	env, err := encodeEnvelope(m, "base64")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := e.rdb.LPush(ctx, e.prefix+"npub", env).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkRoundTrip is one message in flight at a time, LPUSH (go-redis)
// to callback: through the transport and the hub ("hub"), and through a
// plain go-redis BRPOP loop with no unacked record ("plain-brpop"), in the
// same run. ns/op is the round trip.
func BenchmarkRoundTrip(b *testing.B) {
	env, err := encodeEnvelope(&transport.Message{Body: benchBody(0), ContentType: "application/json",
		ContentEncoding: "utf-8", DeliveryInfo: transport.DeliveryInfo{DeliveryTag: "t"}}, "base64")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hub", func(b *testing.B) {
		e := newEnv(b, nil)
		ch := e.channel()
		ctx := context.Background()
		got := make(chan struct{}, 1)
		if _, err := ch.Consume(ctx, transport.ConsumeOptions{Queue: "rt"}, func(m *transport.Message) {
			ch.Ack(m.DeliveryInfo.DeliveryTag)
			got <- struct{}{}
		}); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		b.ResetTimer()
		for range b.N {
			if err := e.rdb.LPush(ctx, e.prefix+"rt", env).Err(); err != nil {
				b.Fatal(err)
			}
			<-got
		}
	})
	b.Run("plain-brpop", func(b *testing.B) {
		e := newEnv(b, nil)
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan struct{}, 1)
		rdb := e.tr.o.newClient()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				kv, err := rdb.BRPop(ctx, time.Second, e.prefix+"rt").Result()
				if err != nil {
					continue
				}
				if _, err := decodeEnvelope([]byte(kv[1])); err != nil {
					b.Error(err)
				}
				got <- struct{}{}
			}
		}()
		time.Sleep(100 * time.Millisecond)
		b.ResetTimer()
		for range b.N {
			if err := e.rdb.LPush(ctx, e.prefix+"rt", env).Err(); err != nil {
				b.Fatal(err)
			}
			<-got
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		rdb.Close()
	})
}

// BenchmarkPublishBatchVsPipeline compares, in interleaved rounds of the
// same run, Channel.PublishBatch of messages (envelopes encoded in the
// call) with a plain go-redis pipeline of envelopes encoded beforehand, in
// batches of 100; it reports both rates and the ratio.
func BenchmarkPublishBatchVsPipeline(b *testing.B) {
	e := newEnv(b, nil)
	ch := e.channel()
	ctx := context.Background()
	reqs := make([]PublishRequest, 100)
	envs := make([][]byte, 100)
	for i := range reqs {
		reqs[i] = PublishRequest{Message: benchMsg(i), RoutingKey: "pvp"}
		m := *benchMsg(i)
		m.DeliveryInfo = transport.DeliveryInfo{RoutingKey: "pvp", DeliveryTag: fmt.Sprintf("tag-%d", i)}
		env, err := encodeEnvelope(&m, "base64")
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	var ours, plain time.Duration
	n := max(b.N/100, 1)
	b.ResetTimer()
	for round := 0; round < 10; round++ {
		for k := range 2 {
			if (round+k)%2 == 0 {
				t0 := time.Now()
				for range n / 10 {
					if err := ch.PublishBatch(ctx, reqs); err != nil {
						b.Fatal(err)
					}
				}
				ours += time.Since(t0)
				continue
			}
			t0 := time.Now()
			for range n / 10 {
				if _, err := e.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
					for _, env := range envs {
						p.LPush(ctx, e.prefix+"pvp-plain", env)
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			plain += time.Since(t0)
		}
		e.rdb.Del(ctx, e.prefix+"pvp", e.prefix+"pvp-plain")
	}
	msgs := float64(n / 10 * 10 * 100)
	b.ReportMetric(msgs/ours.Seconds(), "batch-msg/s")
	b.ReportMetric(msgs/plain.Seconds(), "pipeline-msg/s")
	b.ReportMetric(plain.Seconds()/ours.Seconds(), "ratio")
}
