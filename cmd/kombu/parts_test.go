package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestGoStyleArgs(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("url", "", "")
	fs.Bool("json", false, "")
	fs.String("routing-key", "", "")
	cases := []struct{ in, want []string }{
		{[]string{"-url", "u", "-json", "body"}, []string{"--url", "u", "--json", "body"}},
		{[]string{"-url=u", "-routing-key", "-json"}, []string{"--url=u", "--routing-key", "-json"}}, // a value stays a value
		{[]string{"--url", "-json", "-h", "-5"}, []string{"--url", "-json", "-h", "-5"}},
		{[]string{"--", "-url", "x"}, []string{"--", "-url", "x"}},
		{[]string{"-nosuch", "b"}, []string{"-nosuch", "b"}},
	}
	for _, c := range cases {
		if got := goStyleArgs(fs, c.in); !slices.Equal(got, c.want) {
			t.Errorf("goStyleArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestArgValue(t *testing.T) {
	for in, want := range map[string]any{
		"10": int64(10), "-3": int64(-3), "1.5": 1.5, "true": true, "false": false,
		`"10"`: "10", "quorum": "quorum", "1e3": 1000.0, "": "", "0x10": "0x10",
	} {
		if got := argValue(in); fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", want, want) {
			t.Errorf("argValue(%q) = %T %v, want %T %v", in, got, got, want, want)
		}
	}
	if _, err := parseArgs("--queue-arg", []string{"novalue"}); err == nil {
		t.Error("parseArgs accepted a k=v without '='")
	}
}

func TestPlainNumbers(t *testing.T) {
	v, err := decodeJSONArg(`{"i": 42, "u": 18446744073709551615, "f": 2.5, "huge": 1e400, "l": [1, {"x": -1}]}`)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%#v", plainNumbers(v))
	for _, want := range []string{`"i":42`, `"u":0xffffffffffffffff`, `"f":2.5`, `"huge":+Inf`, `"x":-1`} {
		if !strings.Contains(got, want) {
			t.Errorf("plainNumbers: %s lacks %s", got, want)
		}
	}
	if strings.Contains(got, "json.Number") {
		t.Errorf("plainNumbers left a json.Number: %s", got)
	}
}

func TestParseExpiration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "60": time.Minute, "1.5": 1500 * time.Millisecond, "500ms": 500 * time.Millisecond} {
		if got, err := parseExpiration(in); err != nil || got != want {
			t.Errorf("parseExpiration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "soon", "10us", "NaN"} {
		if _, err := parseExpiration(in); err == nil {
			t.Errorf("parseExpiration(%q) succeeded", in)
		}
	}
}

func TestRenderBar(t *testing.T) {
	got := renderBar("publish", 52000, 100000, 4*time.Second, 100)
	for _, want := range []string{"publish [", "52%", "52,000/100,000", "13,000/s", "ETA 4s"} {
		if !strings.Contains(got, want) {
			t.Errorf("renderBar = %q, lacks %q", got, want)
		}
	}
	if len([]rune(got)) > 100 {
		t.Errorf("renderBar is %d columns wide, over 100: %q", len([]rune(got)), got)
	}
	if narrow := renderBar("publish", 1, 2, time.Second, 20); strings.Contains(narrow, "[") {
		t.Errorf("no room for a bar, yet: %q", narrow)
	}
	for d, want := range map[time.Duration]string{4 * time.Second: "4s", 125 * time.Second: "2m05s", 3725 * time.Second: "1h02m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := thousands(-1234567); got != "-1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}

func TestSparkline(t *testing.T) {
	if got := sparkline([]float64{0, 1, 2, 3, 4, 5, 6, 7}); got != "▁▂▃▄▅▆▇█" {
		t.Errorf("sparkline ramp = %q", got)
	}
	if got := sparkline([]float64{5, 5}); got != "██" { // scaled from 0
		t.Errorf("sparkline flat = %q", got)
	}
	if got := sparkline([]float64{0, 0}); got != "▁▁" {
		t.Errorf("sparkline zero = %q", got)
	}
	if got := sparkline([]float64{-4, 0, 4, 0, -2}); got != "▁▅█▅▃" { // 0 in the middle
		t.Errorf("sparkline signed = %q", got)
	}
}

func TestTopTableAndRates(t *testing.T) {
	v := &topView{src: &redisTop{}, sortBy: "depth", hist: map[string]*topHist{}}
	one := int64(1)
	f := v.update([]topRow{{Queue: "small", Ready: 1}, {Queue: "big", Ready: 10, Unacked: &one}})
	if f.Queues[0].Queue != "big" || f.Queues[0].NetPerS != nil {
		t.Fatalf("first frame: %+v", f.Queues)
	}
	v.hist["big"].at = v.hist["big"].at.Add(-time.Hour) // as if sampled an hour ago
	f = v.update([]topRow{{Queue: "big", Ready: 4, Unacked: &one}})
	if net := f.Queues[0].NetPerS; net == nil || *net > -6.0/3600*0.99 || *net < -6.0/3600*1.01 {
		t.Errorf("net_per_s after 6 fewer in an hour: %v", net)
	}
	if _, ok := v.hist["small"]; ok {
		t.Error("a queue gone from the sample keeps its history")
	}
	lines := formatTopTable(f.Queues)
	if !strings.HasPrefix(lines[0], "QUEUE") || !strings.HasPrefix(lines[1], "big") || !strings.Contains(lines[1], "-0.0") {
		t.Errorf("table:\n%s", strings.Join(lines, "\n"))
	}
	b, _ := json.Marshal(f)
	if !strings.Contains(string(b), `"trend_of":"net_per_s"`) || strings.Contains(string(b), "consumers") {
		t.Errorf("frame JSON: %s", b)
	}
}
