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
	// Queues is how many queues each publisher spreads its messages over
	// (message i to queue i%Queues), and Masters how many masters those
	// are on: 1 and 1 on one node; on a cluster one queue per master.
	Queues, Masters int
}

// comparePublish publishes n messages with each of the three publishers
// to scratch queues, in batches of batch, over publishRounds rounds that
// run the three in a random order each time, so that all three see the
// same drift of the machine (a sequential measurement on this VM varied by
// 2x between runs). On one node each publisher has a queue; on a cluster,
// a queue on each master, and its batches take them in turn, so that each
// batch is a pipeline per master. The queues are deleted afterwards.
func comparePublish(ctx context.Context, url string, prod *messaging.Producer, queue string, n, batch int,
	payload string) (PublishComparison, error) {
	br, err := newBenchRedis(url, 10, false)
	if err != nil {
		return PublishComparison{}, err
	}
	rdb := br.rdb
	defer rdb.Close()
	var qs [3][]string
	res := PublishComparison{Queues: 1, Masters: 1}
	for k, side := range []string{"-batched", "-ready", "-naive"} {
		qs[k] = []string{queue + side}
	}
	if br.cluster {
		t, err := parseCluster(url)
		if err != nil {
			return res, err
		}
		m, err := t.slots(ctx)
		if err != nil {
			return res, err
		}
		res.Queues, res.Masters = len(m.masters), len(m.masters)
		for k := range qs {
			if qs[k], _, err = t.pickQueues(m, qs[k][0], len(m.masters), true); err != nil {
				return res, err
			}
		}
	}
	keys := func(queues []string) []string {
		out := make([]string, len(queues))
		for i, q := range queues {
			out[i] = br.list(q)
		}
		return out
	}
	del := func(ctx context.Context) {
		for _, side := range qs {
			for _, k := range keys(side) { // one by one: on a cluster, in different slots
				rdb.Del(ctx, k)
			}
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
				d, err = publishPipeline(ctx, rdb, qs[k], keys(qs[k]), per, batch, payload, k == 2)
			}
			if err != nil {
				return res, err
			}
			took[k] += d
		}
		del(ctx)
	}
	total := float64(per * publishRounds)
	res.Batched, res.Ready, res.Naive = total/took[0].Seconds(), total/took[1].Seconds(), total/took[2].Seconds()
	return res, nil
}

// publishBatched publishes n messages with Producer.PublishBatch, message
// i to queues[i%len(queues)].
func publishBatched(ctx context.Context, prod *messaging.Producer, queues []string, n, batch int, payload string) (time.Duration, error) {
	msgs := make([]messaging.BatchMessage, 0, batch)
	start := time.Now()
	for i := 0; i < n; i++ {
		msgs = append(msgs, messaging.BatchMessage{Body: map[string]any{"i": i, "payload": payload},
			Options: messaging.PublishOptions{RoutingKey: queues[i%len(queues)]}})
		if len(msgs) == batch || i == n-1 {
			if err := prod.PublishBatch(ctx, msgs, messaging.BatchOptions{}); err != nil {
				return 0, err
			}
			msgs = msgs[:0]
		}
	}
	return time.Since(start), nil
}

// publishPipeline LPUSHes n Kombu envelopes, message i of queues[i%len]
// to its list key keys[i%len], with go-redis pipelines of batch commands
// (on a cluster, go-redis sends one per node, concurrently): encoded
// beforehand (inLoop false, not timed) or in the loop (inLoop true).
func publishPipeline(ctx context.Context, rdb goredis.UniversalClient, queues, keys []string, n, batch int, payload string, inLoop bool) (time.Duration, error) {
	encode := func(i int) ([]byte, error) {
		queue := queues[i%len(queues)]
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
				p.LPush(ctx, keys[j%len(keys)], env)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("pipeline: %w", err)
		}
	}
	return time.Since(start), nil
}
