package transporttest

import (
	"reflect"
	"slices"
	"testing"

	"github.com/kombu-go/kombu/transport"
)

// hubHooks are the virtual channel's hub-side hooks (package channel):
// a transport's channel type must not export them.
var hubHooks = []string{"Deliver", "Room", "NoAck", "Wake", "CanConsume", "Lookup", "State", "Store", "Hub"}

// CheckChannelAPI fails t when ch's type exports anything beyond the
// transport.Channel contract, the optional interfaces of package transport
// it implements (BatchPublisher, Returner, Flower) and the documented
// extensions named in extra: a hub-only hook of the virtual channel (Deliver,
// Room, NoAck, ...) or an exported non-embedded field. Embedded fields are
// allowed: the methods they promote are checked with the rest.
func CheckChannelAPI(t testing.TB, ch transport.Channel, extra ...string) {
	t.Helper()
	allowed := slices.Clone(extra)
	for _, it := range []reflect.Type{
		reflect.TypeFor[transport.Channel](), reflect.TypeFor[transport.BatchPublisher](),
		reflect.TypeFor[transport.Returner](), reflect.TypeFor[transport.Flower](),
	} {
		for i := range it.NumMethod() {
			allowed = append(allowed, it.Method(i).Name)
		}
	}
	typ := reflect.TypeOf(ch)
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if slices.Contains(hubHooks, name) {
			t.Errorf("%v exports the hub-only hook %s", typ, name)
		} else if !slices.Contains(allowed, name) {
			t.Errorf("%v exports %s, neither transport.Channel's, an optional interface's nor a documented extension", typ, name)
		}
	}
	if typ.Kind() == reflect.Pointer && typ.Elem().Kind() == reflect.Struct {
		for _, f := range reflect.VisibleFields(typ.Elem()) {
			if f.IsExported() && !f.Anonymous {
				t.Errorf("%v has the exported field %s", typ, f.Name)
			}
		}
	}
}
