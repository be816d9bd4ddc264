package filesystem

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ok    bool
		ms    int64
		queue string
	}{
		{"1823866_e1c5e19e-fb68-47b8-b203-eacd11bf6a27.q1.msg", true, 1823866, "q1"},
		{"5_x.a.b.c.msg", true, 5, "a.b.c"}, // dotted queue names parse whole
		{"5_x..msg", false, 0, ""},
		{"5_x.q.msg.tmp", false, 0, ""},
		{"x_y.q.msg", false, 0, ""},
		{"-1_y.q.msg", false, 0, ""},
		{"_y.q.msg", false, 0, ""},
		{"5_.q.msg", false, 0, ""},
		{".kombu-go", false, 0, ""},
		{".kombu-go-tmp-123", false, 0, ""},
	} {
		f, ok := parseName(tc.name)
		if ok != tc.ok || (ok && (f.ms != tc.ms || f.queue != tc.queue)) {
			t.Errorf("parseName(%q) = %+v, %v; want ms %d queue %q ok %v", tc.name, f, ok, tc.ms, tc.queue, tc.ok)
		}
	}
}

// Names we write parse back, are Kombu-shaped, and sort in publish order
// within this process (the counter at the start of the uuid).
func TestMakeNameOrder(t *testing.T) {
	var names []string
	for range 1000 {
		names = append(names, makeName(42, "q.x"))
	}
	if !slices.IsSorted(names) {
		t.Error("names of one millisecond are not in publish order")
	}
	f, ok := parseName(names[0])
	if !ok || f.ms != 42 || f.queue != "q.x" {
		t.Errorf("%q parsed as %+v %v", names[0], f, ok)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(names[0], "42_"), ".q.x.msg")
	if len(id) != 36 || strings.Count(id, "-") != 4 || id[14] != '8' {
		t.Errorf("id %q is not uuid-shaped (version 8)", id)
	}
}

func TestMonotonicMillisAdvances(t *testing.T) {
	a := monotonicMillis()
	time.Sleep(5 * time.Millisecond)
	if b := monotonicMillis(); b <= a {
		t.Errorf("monotonic ms %d then %d", a, b)
	}
}

func TestCheckQueueName(t *testing.T) {
	for _, q := range []string{"", "a/b", "a\x00"} {
		if checkQueueName(q) == nil {
			t.Errorf("queue name %q accepted", q)
		}
	}
	if err := checkQueueName("celery.pidbox"); err != nil {
		t.Error(err)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseConfig(transport.Config{Options: map[string]any{
		"data_folder_in": "a", "data_folder_out": "b", "store_processed": "true",
		"processed_folder": "p", "polling_interval": "0.5", "watch": false, "recover_interval": 2,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if o.DataFolderIn != "a" || o.DataFolderOut != "b" || !o.StoreProcessed || o.ProcessedFolder != "p" ||
		o.PollingInterval != 500*time.Millisecond || o.Watch || o.RecoverInterval != 2*time.Second {
		t.Errorf("options %+v", o)
	}
	d, err := ParseConfig(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d.DataFolderIn != "data_in" || d.DataFolderOut != "data_out" || d.ProcessedFolder != "processed" ||
		d.StoreProcessed || d.PollingInterval != time.Second || !d.Watch {
		t.Errorf("defaults %+v, want Kombu's", d)
	}
	var oe *transport.OptionError
	if _, err := ParseConfig(transport.Config{Options: map[string]any{"data_folder": "x"}}); !errors.As(err, &oe) {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := ParseConfig(transport.Config{Hostname: "example.com"}); err == nil {
		t.Error("a host in the URL accepted")
	}
	if _, err := NewWithOptions(Options{DataFolderIn: "a", DataFolderOut: "b"}); err == nil {
		t.Error("polling interval 0 accepted")
	}
}

func FuzzParseName(f *testing.F) {
	f.Add("1823866_e1c5e19e-fb68-47b8-b203-eacd11bf6a27.q1.msg")
	f.Add("5_x.a.b.c.msg")
	f.Add(".kombu-go")
	f.Fuzz(func(t *testing.T, name string) {
		fn, ok := parseName(name)
		if !ok {
			return
		}
		// What parses is a name we could have written for that queue.
		if !strings.HasSuffix(name, "."+fn.queue+".msg") || fn.ms < 0 || fn.queue == "" {
			t.Fatalf("%q parsed as %+v", name, fn)
		}
		if again, ok := parseName(name); !ok || again != fn {
			t.Fatalf("not deterministic: %+v %+v", fn, again)
		}
	})
}
