package serializer_test

import (
	"testing"

	"github.com/kombu-go/kombu/messaging/serializer"
)

// smallMap is a typical small message body.
var smallMap = map[string]any{
	"task":   "proj.tasks.add",
	"id":     "6f1c2a5e-9a7b-4c1d-8e2f-0a1b2c3d4e5f",
	"args":   []any{2, 3},
	"kwargs": map[string]any{"retry": true},
	"eta":    nil,
}

func BenchmarkDumpsJSON_SmallMap(b *testing.B) {
	r := serializer.Default()
	_, _, body, _ := r.Dumps(smallMap, "json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := r.Dumps(smallMap, "json"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadsJSON_SmallMap(b *testing.B) {
	r := serializer.Default()
	ct, ce, body, _ := r.Dumps(smallMap, "json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Loads(body, ct, ce, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadsIntoJSON_SmallStruct(b *testing.B) {
	type msg struct {
		Task   string         `json:"task"`
		ID     string         `json:"id"`
		Args   []int          `json:"args"`
		Kwargs map[string]any `json:"kwargs"`
	}
	r := serializer.Default()
	ct, ce, body, _ := r.Dumps(smallMap, "json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var m msg
		if err := r.LoadsInto(body, ct, ce, nil, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadsJSON_CeleryBody(b *testing.B) {
	r := serializer.Default()
	body := []byte(celeryBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Loads(body, "application/json", "utf-8", nil); err != nil {
			b.Fatal(err)
		}
	}
}
