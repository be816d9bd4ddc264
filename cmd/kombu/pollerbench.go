package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kombu-go/kombu/bench"
	"github.com/kombu-go/kombu/hub"
)

func init() {
	register(command{name: "poller-bench", summary: "event-loop microbenchmarks: hub vs raw epoll vs goroutine per fd", run: runPollerBench})
}

type pollerBenchOutput struct {
	Results  []bench.RingResult `json:"results"`
	WakeupNs map[string]float64 `json:"wakeup_ns"`
	TimersNs bench.TimerResult  `json:"timers_ns"`
	// Additive fields (the contract grows only by addition):
	HubWaitMode string             `json:"hub_wait_mode"`
	Ratios      map[string]float64 `json:"ratios"`
}

func runPollerBench(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "poller-bench", "[--fds 1,100,1000,9000] [--events N] [--reps R] [--json]")
	fdsFlag := fs.String("fds", "1,100,1000,9000", "comma-separated ring sizes (registered descriptors)")
	events := fs.Int("events", 200000, "dispatched events per ring run")
	reps := fs.Int("reps", 5, "repetitions per measurement; the median is reported")
	wakeIters := fs.Int("wake-iters", 2000, "round trips per wake-up measurement")
	jsonOut := fs.Bool("json", false, "print JSON instead of a table")
	implsFlag := fs.String("impls", "raw-epoll,hub,goroutines", "ring implementations, the first is the floor (also hub-blocking, hub-gosched, hub-netpoll)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(*fdsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 9500 {
			return usageErr(e, fs, "bad --fds value %q (1..9500: the open-file limit is 20,000)", s)
		}
		sizes = append(sizes, n)
	}
	if *reps < 1 || *events < 1 || *wakeIters < 1 {
		return usageErr(e, fs, "--reps, --events and --wake-iters must be positive")
	}
	out := pollerBenchOutput{WakeupNs: map[string]float64{}, Ratios: map[string]float64{}}
	h, err := hub.New(hub.Options{})
	if err != nil {
		return err
	}
	out.HubWaitMode = h.WaitMode().String()
	h.Close()

	// A status line on a terminal only: piped, stderr stays quiet.
	status := func(s string) {
		if e.stderrTTY {
			fmt.Fprintf(e.stderr, "\r%s\x1b[K", s)
		}
	}
	impls := strings.Split(*implsFlag, ",")
	for _, n := range sizes {
		samples := map[string][]bench.RingResult{}
		for r := 0; r < *reps; r++ {
			for _, impl := range impls { // interleaved: drift hits every impl alike
				if err := ctx.Err(); err != nil {
					return err
				}
				res, err := bench.RunRing(impl, n, *events)
				if err != nil {
					return err
				}
				samples[impl] = append(samples[impl], res)
			}
			status(fmt.Sprintf("ring fds=%d: repetition %d/%d", n, r+1, *reps))
		}
		for _, impl := range impls {
			out.Results = append(out.Results, medianRing(samples[impl]))
		}
		group := out.Results[len(out.Results)-len(impls):]
		for _, res := range group {
			out.Ratios[fmt.Sprintf("%s/%s@%d", res.Impl, impls[0], n)] = res.NsPerEvent / group[0].NsPerEvent
		}
	}
	status("wake-up round trips...")
	wake, err := bench.Wakeup(*wakeIters, *reps)
	if err != nil {
		return err
	}
	for _, w := range wake {
		out.WakeupNs[w.Mode] = w.Ns
	}
	floor := out.WakeupNs[bench.WakeNetpoll]
	if v, ok := out.WakeupNs[bench.WakeRaw]; ok && v < floor {
		floor = v
	}
	out.WakeupNs["hub"] = out.WakeupNs["hub-"+out.HubWaitMode]
	out.Ratios["wakeup hub/best-fd-floor"] = out.WakeupNs["hub"] / floor
	status("timers...")
	out.TimersNs = bench.Timers(200000, 100000)
	status("")
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printPollerTable(e.stdout, out, impls[0])
	return nil
}

func medianRing(rs []bench.RingResult) bench.RingResult {
	ns := make([]float64, len(rs))
	al := make([]float64, len(rs))
	g := 0
	for i, r := range rs {
		ns[i], al[i] = r.NsPerEvent, r.AllocsPerEvent
		g = max(g, r.Goroutines)
	}
	return bench.RingResult{Impl: rs[0].Impl, Fds: rs[0].Fds, NsPerEvent: bench.Median(ns), AllocsPerEvent: bench.Median(al), Goroutines: g}
}

func printPollerTable(w io.Writer, out pollerBenchOutput, floor string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "impl\tfds\tns/event\tallocs/event\tgoroutines\tvs %s\t\n", floor)
	for _, r := range out.Results {
		ratio := out.Ratios[fmt.Sprintf("%s/%s@%d", r.Impl, floor, r.Fds)]
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%d\t%.2fx\t\n", r.Impl, r.Fds, r.NsPerEvent, r.AllocsPerEvent, r.Goroutines, ratio)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nwake-up round trip into an idle waiter (hub wait mode in use: %s)\n", out.HubWaitMode)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mechanism\tns\t")
	for _, k := range []string{bench.WakeChan, bench.WakeNetpoll, bench.WakeRaw, "hub-blocking", "hub-gosched", "hub-netpoll"} {
		if v, ok := out.WakeupNs[k]; ok {
			fmt.Fprintf(tw, "%s\t%.0f\t\n", k, v)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "hub / best fd floor: %.2fx\n", out.Ratios["wakeup hub/best-fd-floor"])
	t := out.TimersNs
	fmt.Fprintf(w, "\ntimers (ns/op, 100k pending): heap schedule+cancel %.0f, heap schedule+fire %.0f, AfterFunc schedule+stop %.0f, AfterFunc schedule+fire %.0f (%.1fx the heap)\n",
		t.HeapScheduleCancel, t.HeapScheduleFire, t.AfterFuncScheduleStop, t.AfterFuncScheduleFire, t.AfterFuncScheduleFire/t.HeapScheduleFire)
}
