package transporttest_test

import (
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/transporttest"
	"testing"
)

type leaky struct {
	transport.Channel
	Exported int
}

func (*leaky) Deliver() {}
func (*leaky) Extra()   {}
func TestCheckChannelAPICatches(t *testing.T) {
	ft := &fakeT{TB: t}
	transporttest.CheckChannelAPI(ft, &leaky{})
	if ft.n != 3 {
		t.Fatalf("%d errors, want 3 (Deliver, Extra, Exported)", ft.n)
	}
}

type fakeT struct {
	testing.TB
	n int
}

func (f *fakeT) Errorf(string, ...any) { f.n++ }
func (f *fakeT) Helper()               {}
