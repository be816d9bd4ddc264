package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kombu-go/kombu/bench"
)

func init() {
	register(command{name: "bench", summary: "publish and consume with acks through the hub; msg/s and latency", run: runBench})
}

func runBench(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench", "[--url memory://] [--messages N] [--size BYTES] [--queues Q] [--prefetch P] [--json]")
	url := fs.String("url", "memory://", "broker URL (default: the in-process memory transport; KOMBU_URL is not read, so a benchmark never lands on a broker by accident)")
	messages := fs.Int("messages", 200000, "messages to publish and then consume")
	size := fs.Int("size", 64, "payload bytes in each JSON body")
	queues := fs.Int("queues", 1, "queues the consumer consumes from")
	busy := fs.Int("busy-queues", 1, "how many of the queues receive the messages")
	prefetch := fs.Int("prefetch", 100, "prefetch count (unacknowledged messages in flight)")
	batch := fs.Int("batch", 1, "publish in batches of this size (pipelined where the transport can)")
	latency := fs.Int("latency", 2000, "ping-pong round trips for the latency percentiles (0: skip)")
	idle := fs.Duration("idle", 0, "after the run, measure idle CPU, goroutines (and Redis connections) for this long (default 2s when --queues > 1)")
	jsonOut := fs.Bool("json", false, "print one JSON object instead of a report")
	baseline := fs.Bool("baseline", true, "on Redis, also run the naive goroutine-per-queue go-redis consumer in the same run and print the ratios")
	rounds := fs.Int("scaling-rounds", 0, "with --queues > 1: also compare, in this many alternating rounds, a consumer on the --queues queues (messages on one) with one on a single queue (0: skip)")
	crounds := fs.Int("cluster-scaling-rounds", 0, "on redis+cluster://: also compare, in this many alternating rounds, --queues busy queues spread evenly over the masters with --queues busy queues all on one master (0: skip)")
	cpubs := fs.Int("cluster-publishers", 4, "with --cluster-scaling-rounds: goroutines publishing each round's backlog, each on a connection of its own")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	if !fs.Changed("idle") && *queues > 1 {
		// Many queues: the idle cost is part of the answer.
		*idle = 2 * time.Second
	}
	if *messages < 1 || *size < 0 || *queues < 1 || *prefetch < 0 || *latency < 0 || *rounds < 0 || *crounds < 0 || *cpubs < 1 {
		return usageErr(e, fs, "--messages, --queues and --cluster-publishers must be positive; --size, --prefetch, --latency, --scaling-rounds and --cluster-scaling-rounds not negative")
	}
	if *rounds > 0 && (*queues < 2 || *messages < *rounds) {
		return usageErr(e, fs, "--scaling-rounds needs --queues of at least 2 and at least one message per round")
	}
	if *crounds > 0 && (*queues < 2 || *messages < *crounds**queues) {
		return usageErr(e, fs, "--cluster-scaling-rounds needs --queues of at least 2 and at least one message per queue per round")
	}
	if *crounds > 0 && !strings.HasPrefix(strings.ToLower(*url), "redis+cluster://") && !strings.HasPrefix(strings.ToLower(*url), "cluster://") {
		return usageErr(e, fs, "--cluster-scaling-rounds needs a redis+cluster:// URL")
	}
	pr := newProgress(e, *quiet)
	res, err := bench.RunMessaging(ctx, bench.MessagingConfig{
		URL: *url, Messages: *messages, Size: *size, Queues: *queues, Busy: *busy,
		Prefetch: *prefetch, Batch: *batch, Latency: *latency, Idle: *idle, Baseline: *baseline,
		Progress: func(phase string, done, total int) { pr.update(phase, done, total) },
	})
	pr.done()
	if err != nil {
		return err
	}
	if *rounds > 0 {
		sc, err := bench.RunScaling(ctx, bench.ScalingConfig{
			URL: *url, Messages: *messages, Rounds: *rounds, Queues: *queues, Size: *size, Prefetch: *prefetch,
			Progress: func(phase string, done, total int) { pr.update(phase, done, total) },
		})
		pr.done()
		if err != nil {
			return fmt.Errorf("scaling: %w", err)
		}
		res.Scaling = &sc
	}
	if *crounds > 0 {
		cs, err := bench.RunClusterScaling(ctx, bench.ClusterScalingConfig{
			URL: *url, Messages: *messages, Rounds: *crounds, Queues: *queues, Size: *size, Prefetch: *prefetch,
			Publishers: *cpubs, Progress: func(phase string, done, total int) { pr.update(phase, done, total) },
		})
		pr.done()
		if err != nil {
			return fmt.Errorf("cluster scaling: %w", err)
		}
		res.ClusterScaling = &cs
	}
	if *jsonOut {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	fmt.Fprintf(e.stdout, "transport %s: %d messages of %d payload bytes, %d queue(s) (%d busy), prefetch %d\n",
		res.Transport, res.Messages, res.Size, res.Queues, res.BusyQueues, res.Prefetch)
	fmt.Fprintf(e.stdout, "  publish  %10.0f msg/s%s\n", res.PublishPerSec, batchNote(res.Batch))
	fmt.Fprintf(e.stdout, "  consume  %10.0f msg/s  (with acks, through the hub)\n", res.ConsumePerSec)
	if res.LatencySamples > 0 {
		fmt.Fprintf(e.stdout, "  latency  p50 %.1f µs  p99 %.1f µs  (publish -> callback, %d round trips)\n", res.P50us, res.P99us, res.LatencySamples)
	}
	if *idle > 0 {
		fmt.Fprintf(e.stdout, "  idle     %d goroutines, %.2f%% CPU over %s", res.IdleGoroutines, res.IdleCPUPercent, idle.Round(time.Millisecond))
		if res.IdleRedisNodes > 0 {
			fmt.Fprintf(e.stdout, ", %d Redis client connection(s) over %d cluster nodes", res.IdleRedisClients, res.IdleRedisNodes)
		} else if res.Transport == "redis" {
			fmt.Fprintf(e.stdout, ", %d Redis client connection(s)", res.IdleRedisClients)
		}
		fmt.Fprintln(e.stdout)
	}
	if sc := res.Scaling; sc != nil {
		fmt.Fprintf(e.stdout, "queue scaling, %d alternating rounds of %d messages, same run:\n", sc.Rounds, sc.MessagesPerRound)
		fmt.Fprintf(e.stdout, "  %-11s %10.0f msg/s\n", "1 queue", sc.OneQueuePerSec)
		fmt.Fprintf(e.stdout, "  %-11s %10.0f msg/s  (messages on one)  -> %.2fx (median round %.2fx)\n",
			fmt.Sprintf("%d queues", sc.Queues), sc.ManyQueuesPerSec, sc.Ratio, sc.MedianRoundRatio)
	}
	if cs := res.ClusterScaling; cs != nil {
		printClusterScaling(e, cs)
	}
	if res.PublishBaselinePerSec > 0 {
		spread := ""
		if res.PublishRoundsMasters > 1 {
			spread = fmt.Sprintf(", each over %d queues on %d masters", res.PublishRoundsQueues, res.PublishRoundsMasters)
		}
		fmt.Fprintf(e.stdout, "batched publish against a plain go-redis pipeline of the same envelopes (batches of %d%s), %d interleaved rounds:\n",
			res.Batch, spread, 6)
		fmt.Fprintf(e.stdout, "  publish  %10.0f msg/s  PublishBatch\n", res.PublishRoundsPerSec)
		fmt.Fprintf(e.stdout, "  publish  %10.0f msg/s  envelopes encoded beforehand -> batched publish is %.2fx\n",
			res.PublishBaselinePerSec, res.PublishVsBaseline)
		fmt.Fprintf(e.stdout, "  publish  %10.0f msg/s  json.Marshal and the envelope in the loop -> batched publish is %.2fx\n",
			res.PublishNaivePerSec, res.PublishVsNaive)
	}
	if b := res.Baseline; b != nil {
		fmt.Fprintf(e.stdout, "naive baseline (goroutine per queue, go-redis BRPOP, Kombu's unacked records), same run:\n")
		fmt.Fprintf(e.stdout, "  consume  %10.0f msg/s  -> hub is %.2fx\n", b.ConsumePerSec, res.ConsumeVsBaseline)
		if b.P50us > 0 {
			fmt.Fprintf(e.stdout, "  latency  p50 %.1f µs  p99 %.1f µs  -> hub p50 is %.2fx\n", b.P50us, b.P99us, res.LatencyP50VsBaseline)
			if b.PlainP50us > 0 {
				fmt.Fprintf(e.stdout, "  latency  p50 %.1f µs  p99 %.1f µs  without the record (a plain BRPOP loop) -> hub p50 is %.2fx\n",
					b.PlainP50us, b.PlainP99us, res.LatencyP50VsPlain)
			}
		}
	}
	return nil
}

// printClusterScaling prints the --cluster-scaling-rounds comparison.
func printClusterScaling(e *env, cs *bench.ClusterScalingResult) {
	fmt.Fprintf(e.stdout, "cluster scaling, %d alternating rounds of %d messages a side over %d busy queues, %d publishers, same run:\n",
		cs.Rounds, cs.MessagesPerRound, cs.Queues, cs.Publishers)
	for _, side := range []struct {
		name string
		s    *bench.ClusterSide
	}{{"spread", &cs.Spread}, {"one master", &cs.OneMaster}} {
		fmt.Fprintf(e.stdout, "  %-10s on %d of %d masters  publish %8.0f msg/s  consume %8.0f msg/s  (CPU while consuming: client %.0f%%, %d redis-servers %.0f%%, busiest %.0f%%",
			side.name, side.s.Masters, cs.ClusterMasters, side.s.PublishPerSec, side.s.ConsumePerSec,
			side.s.ClientCPUPercent, cs.ClusterNodes, side.s.ServerCPUPercent, side.s.BusiestNodeCPUPercent)
		if side.s.MachineBusyPercent > 0 {
			fmt.Fprintf(e.stdout, "; machine %.0f%% busy", side.s.MachineBusyPercent)
		}
		fmt.Fprintln(e.stdout, ")")
	}
	fmt.Fprintf(e.stdout, "  spread/one: consume %.2fx (median round %.2fx), publish %.2fx (median round %.2fx)\n",
		cs.ConsumeRatio, cs.MedianConsumeRoundRatio, cs.PublishRatio, cs.MedianPublishRoundRatio)
}

func batchNote(b int) string {
	if b > 1 {
		return fmt.Sprintf("  (batches of %d)", b)
	}
	return "  (one by one)"
}
