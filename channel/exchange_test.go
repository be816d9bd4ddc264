package channel_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// Golden patterns from Python Kombu 5.2.4's TopicExchange.key_to_pattern.
var kombuPatterns = []struct{ key, pattern string }{
	{"a.*.c", `^a\..*?[^\.]\.c$`},
	{"a.#", `^a\..*?$`},
	{"#", `^.*?$`},
	{"*", `^.*?[^\.]$`},
	{"*.stock.#", `^.*?[^\.]\.stock\..*?$`},
	{"stock.us.*", `^stock\.us\..*?[^\.]$`},
	{"stock.#", `^stock\..*?$`},
	{"a-b.c", `^a\-b\.c$`},
	{"a_b c", `^a\_b\ c$`},
	{"", `^$`},
	{"a..b", `^a\.\.b$`},
	{"x.*.#.y", `^x\..*?[^\.]\..*?\.y$`},
	{"é.ü", `^é\.ü$`},
	{"a\x00b", `^a\000b$`},
	{"€.*", `^\€\..*?[^\.]$`},
	{"a*b.#x", `^a*b\.#x$`},
	{"a/b:c|d", `^a\/b\:c\|d$`},
	{"$.^", `^\$\.\^$`},
	{"#.#", `^.*?\..*?$`},
	{"*.*", `^.*?[^\.]\..*?[^\.]$`},
}

func TestTopicPatternKombu(t *testing.T) {
	for _, tc := range kombuPatterns {
		if got := channel.TopicPattern(tc.key); got != tc.pattern {
			t.Errorf("TopicPattern(%q) = %q, want %q", tc.key, got, tc.pattern)
		}
	}
}

// Golden matches from Python's re.match on Kombu's patterns.
var topicRoutingKeys = []string{"a.b.c", "a.b.x.c", "a..c", "a.c", "a", "a.", "a.b", "", "eur.stock.db",
	"usd.stock", "stock.nasdaq", "stock.us.nasdaq", ".", "a.b.", ".a", "x.1.2.y", "x.1.y", "€.x", "a-b.c", "ab"}

var kombuMatches = []struct {
	key     string
	matches []string
}{
	{"a.*.c", []string{"a.b.c", "a.b.x.c"}},
	{"a.#", []string{"a.b.c", "a.b.x.c", "a..c", "a.c", "a.", "a.b", "a.b."}},
	{"#", topicRoutingKeys},
	{"*", []string{"a.b.c", "a.b.x.c", "a..c", "a.c", "a", "a.b", "eur.stock.db", "usd.stock", "stock.nasdaq",
		"stock.us.nasdaq", ".a", "x.1.2.y", "x.1.y", "€.x", "a-b.c", "ab"}},
	{"*.stock.#", []string{"eur.stock.db"}},
	{"stock.us.*", []string{"stock.us.nasdaq"}},
	{"#.#", []string{"a.b.c", "a.b.x.c", "a..c", "a.c", "a.", "a.b", "eur.stock.db", "usd.stock", "stock.nasdaq",
		"stock.us.nasdaq", ".", "a.b.", ".a", "x.1.2.y", "x.1.y", "€.x", "a-b.c"}},
	{"*.*", []string{"a.b.c", "a.b.x.c", "a..c", "a.c", "a.b", "eur.stock.db", "usd.stock", "stock.nasdaq",
		"stock.us.nasdaq", "x.1.2.y", "x.1.y", "€.x", "a-b.c"}},
	{"x.*.#.y", []string{"x.1.2.y"}},
	{"€.*", []string{"€.x"}},
	{"a-b.c", []string{"a-b.c"}},
}

func TestTopicMatchKombu(t *testing.T) {
	for _, tc := range kombuMatches {
		p := channel.TopicPattern(tc.key)
		for _, rk := range topicRoutingKeys {
			want := slices.Contains(tc.matches, rk)
			if got := channel.TopicMatch(p, rk); got != want {
				t.Errorf("binding %q (%s), key %q: match %v, want %v", tc.key, p, rk, got, want)
			}
		}
	}
}

func TestTopicMatchInvalidPattern(t *testing.T) {
	// Python refuses "**" too ("multiple repeat"); such a binding matches nothing.
	if channel.TopicMatch(channel.TopicPattern("a.**"), "a.b") {
		t.Error("an invalid pattern matched")
	}
	if channel.TopicMatch("(", "(") {
		t.Error("an invalid pattern matched")
	}
}

func FuzzTopicPattern(f *testing.F) {
	for _, tc := range kombuPatterns {
		f.Add(tc.key, "a.b.c")
	}
	f.Fuzz(func(t *testing.T, key, rk string) {
		p := channel.TopicPattern(key)
		if !strings.HasPrefix(p, "^") || !strings.HasSuffix(p, "$") {
			t.Fatalf("pattern %q not anchored", p)
		}
		channel.TopicMatch(p, rk) // must not panic
		// A binding key without wildcards matches itself exactly.
		if utf8.ValidString(key) && !strings.ContainsAny(key, "*#") {
			if !channel.TopicMatch(p, key) {
				t.Fatalf("literal key %q does not match its own pattern %q", key, p)
			}
			if key != rk && channel.TopicMatch(p, rk) {
				t.Fatalf("literal key %q matches another key %q", key, rk)
			}
		}
	})
}

func headersPattern(t *testing.T, args map[string]any) string {
	t.Helper()
	p, err := channel.HeadersPattern(args)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHeadersMatch(t *testing.T) {
	all := headersPattern(t, map[string]any{"x-match": "all", "a": "1", "n": int64(2), "x-foo": "bar"})
	anyp := headersPattern(t, map[string]any{"x-match": "any", "a": "1", "b": true})
	allx := headersPattern(t, map[string]any{"x-match": "all-with-x", "a": "1", "x-foo": "bar"})
	anyx := headersPattern(t, map[string]any{"x-match": "any-with-x", "x-foo": "bar"})
	dflt := headersPattern(t, map[string]any{"a": "1"})
	empty := headersPattern(t, nil)
	emptyAny := headersPattern(t, map[string]any{"x-match": "any"})
	tests := []struct {
		pattern string
		headers map[string]any
		want    bool
	}{
		{all, map[string]any{"a": "1", "n": 2.0}, true}, // numbers by value; x-foo ignored
		{all, map[string]any{"a": "1", "n": int32(2), "extra": 1}, true},
		{all, map[string]any{"a": "1"}, false},
		{all, map[string]any{"a": "1", "n": "2"}, false},
		{anyp, map[string]any{"b": true}, true},
		{anyp, map[string]any{"a": "2", "b": false}, false},
		{anyp, nil, false},
		{allx, map[string]any{"a": "1"}, false},
		{allx, map[string]any{"a": "1", "x-foo": "bar"}, true},
		{anyx, map[string]any{"x-foo": "bar"}, true},
		{dflt, map[string]any{"a": "1"}, true},
		{dflt, map[string]any{}, false},
		{empty, nil, true},     // all of nothing
		{emptyAny, nil, false}, // any of nothing
		{"not json", map[string]any{}, false},
	}
	for _, tc := range tests {
		if got := channel.HeadersMatch(tc.pattern, tc.headers); got != tc.want {
			t.Errorf("HeadersMatch(%s, %v) = %v, want %v", tc.pattern, tc.headers, got, tc.want)
		}
	}
	if _, err := channel.HeadersPattern(map[string]any{"x-match": "some"}); err == nil {
		t.Error("x-match some accepted")
	}
	nested := headersPattern(t, map[string]any{"m": map[string]any{"k": []any{int64(1), "x"}}})
	if !channel.HeadersMatch(nested, map[string]any{"m": map[string]any{"k": []any{1.0, "x"}}}) {
		t.Error("nested values do not match")
	}
}

// Kombu test_Direct.test_lookup, test_Topic, test_TopicMultibind, test_Fanout.
func TestLookup(t *testing.T) {
	direct := []channel.Row{{"rFoo", "", "qFoo"}, {"rFoo", "", "qFox"}, {"rBar", "", "qBar"}}
	if got := channel.Lookup(transport.Direct, direct, "rFoo", nil, "", nil); !slices.Equal(got, []string{"qFoo", "qFox"}) {
		t.Errorf("direct rFoo: %v", got)
	}
	if got := channel.Lookup(transport.Direct, direct, "rBaz", nil, "", nil); len(got) != 0 {
		t.Errorf("direct unknown key: %v", got)
	}
	if got := channel.Lookup("x-unknown", direct, "rBar", nil, "", nil); !slices.Equal(got, []string{"qBar"}) {
		t.Errorf("unknown type routes as direct: %v", got)
	}
	row := func(key, q string) channel.Row { return channel.Row{key, channel.TopicPattern(key), q} }
	topic := []channel.Row{row("stock.#", "qAll"), row("stock.us.*", "qUS"), row("#", "qDL"), row("#", "")}
	if got := channel.Lookup(transport.Topic, topic, "stock.us.nasdaq", nil, "qDL", nil); !slices.Equal(got, []string{"qAll", "qUS"}) {
		t.Errorf("topic stock.us.nasdaq: %v", got)
	}
	if got := channel.Lookup(transport.Topic, topic, "stock.europe.OSE", nil, "qDL", nil); !slices.Equal(got, []string{"qAll"}) {
		t.Errorf("topic stock.europe.OSE: %v", got)
	}
	if got := channel.Lookup(transport.Topic, topic, "stockxeuropexOSE", nil, "qDL", nil); len(got) != 0 {
		t.Errorf("topic stockxeuropexOSE: %v", got)
	}
	multi := []channel.Row{row("a.#", "q"), row("a.*", "q"), row("#", "q")}
	if got := channel.Lookup(transport.Topic, multi, "a.b", nil, "", nil); !slices.Equal(got, []string{"q"}) {
		t.Errorf("overlapping bindings: %v", got)
	}
	fan := []channel.Row{{"", "", "f1"}, {"k.#", "", "f2"}, {"", "", "f1"}}
	if got := channel.Lookup(transport.Fanout, fan, "whatever", nil, "", nil); !slices.Equal(got, []string{"f1", "f2"}) {
		t.Errorf("fanout: %v", got)
	}
}

// Kombu test_get_message_priority.
func TestPriority(t *testing.T) {
	for _, tc := range []struct {
		p       int
		reverse bool
		want    int
	}{{5, false, 5}, {19, false, 9}, {-10, false, 0}, {0, false, 0}, {2, true, 7}, {100, true, 0}} {
		if got := channel.Priority(tc.p, tc.reverse); got != tc.want {
			t.Errorf("Priority(%d, %v) = %d, want %d", tc.p, tc.reverse, got, tc.want)
		}
	}
}

// Kombu test_put_priority and the bisect quirk.
func TestPriorityStep(t *testing.T) {
	steps := []int{0, 3, 6, 9}
	for p, want := range map[int]int{0: 0, 1: 0, 2: 0, 3: 3, 5: 3, 6: 6, 8: 6, 9: 9, 313: 9, -4: 0} {
		if got := channel.PriorityStep(steps, p); got != want {
			t.Errorf("PriorityStep(%d) = %d, want %d", p, got, want)
		}
	}
	if got := channel.PriorityStep([]int{2, 5}, 1); got != 5 {
		t.Errorf("below the first custom step: %d, want the last step 5", got)
	}
	if got := channel.PriorityStep(nil, 7); got != 0 {
		t.Errorf("no steps: %d", got)
	}
}
