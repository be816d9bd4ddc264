package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/kombu-go/kombu/channel/envelope"
	"github.com/kombu-go/kombu/messaging"
)

// publishRounds is how many rounds comparePublish alternates.
const publishRounds = 6

// PublishComparison is comparePublish's result: the rates of the three
// publishers over the same rounds.
type PublishComparison struct {
	// Batched is Producer.PublishBatch, as the publish phase runs it.
	Batched float64
	// Ready is a plain go-redis pipeline of envelopes encoded before the
	// clock starts: the pipeline alone.
	Ready float64
	// Naive is the same pipeline serializing each body (encoding/json of the
	// same map) and encoding its envelope in the loop: the obvious Go
	// publisher.
	Naive float64
}

// comparePublish publishes n messages with each of the three publishers
// to scratch queues, in batches of batch, over publishRounds rounds that
// run the three in a random order each time, so that all three see the
// same drift of the machine (a sequential measurement on this VM varied by
// 2x between runs). The queues are deleted afterwards.
func comparePublish(ctx context.Context, url string, prod *messaging.Producer, queue string, n, batch int,
	payload string) (PublishComparison, error) {
	br, err := newBenchRedis(url, 10, false)
	if err != nil {
		return PublishComparison{}, err
	}
	rdb := br.rdb
	defer rdb.Close()
	qs := [3]string{queue + "-batched", queue + "-ready", queue + "-naive"}
	del := func(ctx context.Context) {
		for _, q := range qs { // one by one: on a cluster, in three slots
			rdb.Del(ctx, br.list(q))
		}
	}
	defer del(context.Background())
	per := max(n/publishRounds, batch)
	var took [3]time.Duration
	for r := 0; r < publishRounds; r++ {
		for _, k := range rand.Perm(3) {
			var d time.Duration
			var err error
			switch k {
			case 0:
				d, err = publishBatched(ctx, prod, qs[0], per, batch, payload)
			default:
				d, err = publishPipeline(ctx, rdb, qs[k], br.list(qs[k]), per, batch, payload, k == 2)
			}
			if err != nil {
				return PublishComparison{}, err
			}
			took[k] += d
		}
		del(ctx)
	}
	total := float64(per * publishRounds)
	return PublishComparison{Batched: total / took[0].Seconds(), Ready: total / took[1].Seconds(),
		Naive: total / took[2].Seconds()}, nil
}

// publishBatched publishes n messages with Producer.PublishBatch.
func publishBatched(ctx context.Context, prod *messaging.Producer, queue string, n, batch int, payload string) (time.Duration, error) {
	msgs := make([]messaging.BatchMessage, 0, batch)
	start := time.Now()
	for i := 0; i < n; i++ {
		msgs = append(msgs, messaging.BatchMessage{Body: map[string]any{"i": i, "payload": payload},
			Options: messaging.PublishOptions{RoutingKey: queue}})
		if len(msgs) == batch || i == n-1 {
			if err := prod.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
				return 0, err
			}
			msgs = msgs[:0]
		}
	}
	return time.Since(start), nil
}

// publishPipeline LPUSHes n Kombu envelopes of queue to its list key with
// go-redis pipelines of batch commands: encoded beforehand (inLoop false,
// not timed) or in the loop (inLoop true).
func publishPipeline(ctx context.Context, rdb goredis.UniversalClient, queue, key string, n, batch int, payload string, inLoop bool) (time.Duration, error) {
	encode := func(i int) ([]byte, error) {
		body, err := json.Marshal(map[string]any{"i": i, "payload": payload})
		if err != nil {
			return nil, err
		}
		m := &envelope.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8",
			DeliveryInfo: envelope.DeliveryInfo{RoutingKey: queue, DeliveryTag: newTag()}}
		m.Properties.DeliveryMode = 2
		return envelope.Encode(m, "base64")
	}
	var envs [][]byte
	if !inLoop {
		envs = make([][]byte, n)
		for i := range envs {
			var err error
			if envs[i], err = encode(i); err != nil {
				return 0, err
			}
		}
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		_, err := rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j := i; j < min(i+batch, n); j++ {
				env := []byte(nil)
				if inLoop {
					var err error
					if env, err = encode(j); err != nil {
						return err
					}
				} else {
					env = envs[j]
				}
				p.LPush(ctx, key, env)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("pipeline: %w", err)
		}
	}
	return time.Since(start), nil
}
