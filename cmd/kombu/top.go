package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

func init() {
	register(command{name: "top", summary: "a live view of the queues: depth, unacked, rates, refreshed every second", run: runTop})
}

// topRow is one queue in one refresh; also a row of `kombu top --json`
// (a contract: fields are only ever added). Fields the broker cannot tell
// are left out.
type topRow struct {
	Queue          string   `json:"queue"`
	Ready          int64    `json:"ready"`
	Unacked        *int64   `json:"unacked,omitempty"`
	Consumers      *int     `json:"consumers,omitempty"`
	OldestUnackedS *float64 `json:"oldest_unacked_s,omitempty"`
	PublishPerS    *float64 `json:"publish_per_s,omitempty"`
	ConsumePerS    *float64 `json:"consume_per_s,omitempty"`
	// NetPerS is the change of ready+unacked per second since the previous
	// refresh (absent on the first).
	NetPerS *float64 `json:"net_per_s,omitempty"`
	// Trend holds the last values of the sparkline's rate, oldest first.
	Trend []float64 `json:"trend,omitempty"`
}

// topFrame is one line of `kombu top --json`.
type topFrame struct {
	Time      time.Time `json:"time"`
	Transport string    `json:"transport"`
	// TrendOf names the rate of the trend: "consume_per_s" or "net_per_s".
	TrendOf string   `json:"trend_of"`
	Queues  []topRow `json:"queues"`
}

// topSource samples the queues once.
type topSource interface {
	sample(ctx context.Context) ([]topRow, error)
	// trendOf says which rate the sparkline shows, and note why.
	trendOf() (field, note string)
	Close() error
}

const trendLen = 20

func runTop(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "top", "[--url URL] [--management-url URL] [--interval D] [--iterations N] [--sort depth|name] [--json] [NAME...]")
	url := fs.String("url", "", urlHelp)
	mgmt := fs.String("management-url", "", "RabbitMQ: the management API (default http://<host of --url>:15672)")
	interval := fs.Duration("interval", time.Second, "time between refreshes")
	iterations := fs.Int("iterations", 0, "stop after N refreshes (0: until q or Ctrl-C)")
	sortBy := fs.String("sort", "depth", "row order: depth (ready+unacked, largest first) or name")
	jsonOut := fs.Bool("json", false, "stream one JSON object per refresh per line instead of the screen")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *interval < 100*time.Millisecond {
		return usageErr(e, fs, "--interval must be at least 100ms")
	}
	if *iterations < 0 || (*sortBy != "depth" && *sortBy != "name") {
		return usageErr(e, fs, "--iterations must not be negative; --sort is depth or name")
	}
	u, err := brokerURL(e, fs, *url)
	if err != nil {
		return err
	}
	conn, err := messaging.NewConnection(u, messaging.Options{})
	if err != nil {
		return err
	}
	defer conn.Close()
	src, err := newTopSource(ctx, conn, u, *mgmt, fs.Args())
	if err != nil {
		return err
	}
	defer src.Close()

	t := &topView{e: e, src: src, url: conn.String(), driver: driverOf(conn), interval: *interval,
		sortBy: *sortBy, hist: map[string]*topHist{}}
	t.screen = !*jsonOut && e.stdoutTTY
	if t.screen {
		fmt.Fprint(e.stdout, "\x1b[?1049h\x1b[?25l") // alternate screen, no cursor
		defer fmt.Fprint(e.stdout, "\x1b[?25h\x1b[?1049l")
	}
	keys := -1
	if e.stdin != nil && t.screen {
		if restore, err := cbreak(int(e.stdin.Fd())); err == nil {
			defer restore()
			keys = int(e.stdin.Fd())
		}
	}
	next := time.Now()
	for i := 0; *iterations == 0 || i < *iterations; i++ {
		rows, err := src.sample(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		frame := t.update(rows)
		if *jsonOut {
			if err := writeJSON(e.stdout, frame); err != nil {
				return err
			}
		} else {
			t.render(frame)
		}
		if *iterations > 0 && i+1 == *iterations {
			break
		}
		next = next.Add(*interval)
		if now := time.Now(); next.Before(now) {
			next = now // a slow sample: no burst of catch-up refreshes
		}
		if quit := waitTick(ctx, keys, next); quit {
			return nil
		}
	}
	return nil
}

// waitTick waits until next, ctx's end (true) or, with keys >= 0 (the
// terminal in cbreak mode), a q key (true).
func waitTick(ctx context.Context, keys int, next time.Time) bool {
	for {
		left := time.Until(next)
		if ctx.Err() != nil {
			return true
		}
		if left <= 0 {
			return false
		}
		if keys < 0 {
			tm := time.NewTimer(left)
			select {
			case <-ctx.Done():
				tm.Stop()
				return true
			case <-tm.C:
				return false
			}
		}
		// Poll in short slices, so that Ctrl-C (which cancels ctx) is seen
		// quickly even if the poll is not interrupted.
		if waitReadable(keys, min(left, 200*time.Millisecond)) {
			var b [16]byte
			n, _ := readFd(keys, b[:])
			for _, c := range b[:n] {
				if c == 'q' || c == 'Q' || c == 0x1b {
					return true
				}
			}
		}
	}
}

// topHist is a queue's previous sample and its trend.
type topHist struct {
	at    time.Time
	depth int64
	trend []float64
}

// topView turns samples into frames and draws them.
type topView struct {
	e        *env
	src      topSource
	url      string
	driver   string
	interval time.Duration
	sortBy   string
	screen   bool
	hist     map[string]*topHist
	frames   int
}

// update adds the derived rates and trends to rows.
func (t *topView) update(rows []topRow) topFrame {
	now := time.Now()
	field, _ := t.src.trendOf()
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		seen[r.Queue] = true
		depth := r.Ready
		if r.Unacked != nil {
			depth += *r.Unacked
		}
		h := t.hist[r.Queue]
		if h == nil {
			h = &topHist{}
			t.hist[r.Queue] = h
		} else if dt := now.Sub(h.at).Seconds(); dt > 0 {
			net := float64(depth-h.depth) / dt
			r.NetPerS = &net
		}
		h.at, h.depth = now, depth
		v := r.NetPerS
		if field == "consume_per_s" {
			v = r.ConsumePerS
		}
		if v != nil {
			h.trend = append(h.trend, *v)
			if len(h.trend) > trendLen {
				h.trend = h.trend[len(h.trend)-trendLen:]
			}
		}
		r.Trend = slices.Clone(h.trend)
	}
	for q := range t.hist {
		if !seen[q] {
			delete(t.hist, q)
		}
	}
	slices.SortStableFunc(rows, func(a, b topRow) int {
		if t.sortBy == "depth" {
			if da, db := a.depth(), b.depth(); da != db {
				if da > db {
					return -1
				}
				return 1
			}
		}
		return strings.Compare(a.Queue, b.Queue)
	})
	t.frames++
	return topFrame{Time: now.UTC(), Transport: t.driver, TrendOf: field, Queues: rows}
}

func (r topRow) depth() int64 {
	if r.Unacked != nil {
		return r.Ready + *r.Unacked
	}
	return r.Ready
}

// render draws a frame: over the previous one on a terminal, appended
// otherwise (like top -b).
func (t *topView) render(f topFrame) {
	cols, lines := termSize(t.e.stdoutFd)
	if cols <= 0 {
		cols, lines = 200, 0
	}
	field, note := t.src.trendOf()
	what := map[string]string{"consume_per_s": "messages consumed per second", "net_per_s": "change of depth per second"}[field]
	keys := ""
	if t.screen {
		keys = "  (q quits)"
	}
	head := []string{
		fmt.Sprintf("kombu top  %s  every %s  %s%s", t.url, t.interval, f.Time.Local().Format("15:04:05"), keys),
		fmt.Sprintf("trend: %s, last %d refreshes%s", what, trendLen, note),
		"",
	}
	table := formatTopTable(f.Queues)
	if lines > 0 && len(head)+len(table) > lines-1 {
		keep := max(lines-1-len(head)-1, 1)
		more := len(table) - keep
		table = append(table[:keep], fmt.Sprintf("... %d more queue(s)", more))
	}
	var b strings.Builder
	if t.screen {
		b.WriteString("\x1b[H")
	} else if t.frames > 1 {
		b.WriteString("\n")
	}
	for _, l := range append(head, table...) {
		if r := []rune(l); len(r) > cols {
			l = string(r[:cols])
		}
		b.WriteString(l)
		if t.screen {
			b.WriteString("\x1b[K")
		}
		b.WriteString("\n")
	}
	if t.screen {
		b.WriteString("\x1b[J")
	}
	io.WriteString(t.e.stdout, b.String())
}

// formatTopTable lays the rows out in aligned columns (header first).
func formatTopTable(rows []topRow) []string {
	cells := [][]string{{"QUEUE", "READY", "UNACKED", "CONSUMERS", "OLDEST", "PUB/S", "OUT/S", "NET/S", "TREND"}}
	for _, r := range rows {
		cells = append(cells, []string{r.Queue, fmt.Sprint(r.Ready), optInt(r.Unacked), optCount(r.Consumers),
			optAge(r.OldestUnackedS), optRate(r.PublishPerS, false), optRate(r.ConsumePerS, false),
			optRate(r.NetPerS, true), sparkline(r.Trend)})
	}
	width := make([]int, len(cells[0]))
	for _, row := range cells {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	out := make([]string, 0, len(cells))
	for _, row := range cells {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0 || i == len(row)-1:
				b.WriteString(c + pad) // names and sparklines align left
			default:
				b.WriteString(pad + c)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		out = append(out, strings.TrimRight(b.String(), " "))
	}
	return out
}

func optInt(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func optCount(p *int) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func optAge(p *float64) string {
	if p == nil {
		return "-"
	}
	return shortDuration(time.Duration(*p) * time.Second)
}

func optRate(p *float64, signed bool) string {
	if p == nil {
		return "-"
	}
	if signed {
		return fmt.Sprintf("%+.1f", *p)
	}
	return fmt.Sprintf("%.1f", *p)
}

// sparkline draws values as block characters. Rates that are never
// negative scale from 0 (▁) to their maximum (█); a series with negative
// values (the change of depth) scales symmetrically, 0 in the middle (▅),
// so that a queue filling rises and a queue draining dips.
func sparkline(vs []float64) string {
	if len(vs) == 0 {
		return ""
	}
	blocks := []rune("▁▂▃▄▅▆▇█")
	top := float64(len(blocks) - 1)
	lo, hi := slices.Min(vs), slices.Max(vs)
	var b strings.Builder
	for _, v := range vs {
		var x float64 // 0..1
		switch {
		case lo < 0:
			m := max(-lo, hi)
			x = (v/m + 1) / 2
		case hi > 0:
			x = v / hi
		}
		b.WriteRune(blocks[int(math.Round(x*top))])
	}
	return b.String()
}
