package channel_test

import (
	"reflect"
	"testing"

	"github.com/kombu-go/kombu/channel"
	"github.com/kombu-go/kombu/transport"
)

// Handle exports transport.Channel's methods and HandleReturns, nothing
// of the hooks the stores and transports use on the hub.
func TestHandleMethodSet(t *testing.T) {
	want := map[string]bool{"HandleReturns": true}
	ct := reflect.TypeFor[transport.Channel]()
	for i := range ct.NumMethod() {
		want[ct.Method(i).Name] = true
	}
	ht := reflect.TypeFor[channel.Handle]()
	for i := range ht.NumMethod() {
		if name := ht.Method(i).Name; !want[name] {
			t.Errorf("Handle exports %s", name)
		}
	}
	if ht.NumMethod() != len(want) {
		t.Errorf("Handle has %d methods, want %d", ht.NumMethod(), len(want))
	}
}
