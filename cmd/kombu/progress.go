package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line progress bar with the rate and the time left
// on stderr, only when stderr is a terminal: piped or redirected, stderr
// carries nothing but errors and summaries. The bar appears once a phase
// has run for showAfter, so that short runs print nothing.
type progress struct {
	w     io.Writer
	on    bool
	width func() int

	phase      string
	phaseStart time.Time
	last       time.Time
	shown      bool
}

const (
	showAfter     = 500 * time.Millisecond
	redrawEvery   = 100 * time.Millisecond
	progressWidth = 80
)

// newProgress returns a bar on e's stderr; quiet turns it off.
func newProgress(e *env, quiet bool) *progress {
	return &progress{w: e.stderr, on: e.stderrTTY && !quiet, width: func() int {
		if c, _ := termSize(e.stderrFd); c > 0 {
			return c
		}
		return progressWidth
	}}
}

// update reports done of total in phase.
func (p *progress) update(phase string, done, total int) {
	if !p.on {
		return
	}
	now := time.Now()
	if phase != p.phase {
		p.phase, p.phaseStart = phase, now
	}
	if now.Sub(p.phaseStart) < showAfter || now.Sub(p.last) < redrawEvery && done < total {
		return
	}
	p.last, p.shown = now, true
	fmt.Fprint(p.w, "\r"+renderBar(phase, done, total, now.Sub(p.phaseStart), p.width())+"\x1b[K")
}

// done clears the bar.
func (p *progress) done() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
	p.phase = ""
}

// renderBar renders "phase [=====>    ]  52%  52,000/100,000  12,345/s  ETA 4s"
// to fit width columns.
func renderBar(phase string, done, total int, elapsed time.Duration, width int) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	eta := "ETA -"
	if rate > 0 && total >= done {
		eta = "ETA " + shortDuration(time.Duration(float64(total-done)/rate*float64(time.Second)))
	}
	pct := 0
	if total > 0 {
		pct = done * 100 / total
	}
	tail := fmt.Sprintf(" %3d%%  %s/%s  %s/s  %s", pct, thousands(int64(done)), thousands(int64(total)), thousands(int64(rate)), eta)
	barWidth := width - len(phase) - 4 - len([]rune(tail)) - 1
	if barWidth > 40 {
		barWidth = 40
	}
	if barWidth < 5 {
		return strings.TrimSpace(phase + tail)
	}
	fill := 0
	if total > 0 {
		fill = done * barWidth / total
	}
	bar := strings.Repeat("=", fill)
	if fill < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-fill-1)
	}
	return fmt.Sprintf("%s [%s]%s", phase, bar, tail)
}

// shortDuration prints d as 4s, 2m05s or 1h02m.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// thousands prints n with commas: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
