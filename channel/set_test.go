package channel

import (
	"errors"
	"testing"
	"time"

	"github.com/kombu-go/kombu/transport"
)

func TestSet(t *testing.T) {
	s := NewSet[int]()
	ran := false
	if err := s.Add(1, func() { ran = true }); err != nil || !ran {
		t.Fatalf("Add: %v, callback ran %v", err, ran)
	}
	s.Add(2, nil)
	s.Add(3, nil)
	s.Remove(3)
	if _, ok := s.Any(); !ok || s.Closed() || s.Err() != nil {
		t.Fatal("open set misreports")
	}
	chans, first := s.Close()
	if !first || len(chans) != 2 {
		t.Fatalf("Close = %v, %v", chans, first)
	}
	if err := s.Add(4, func() { t.Error("callback ran after Close") }); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	// A second Close waits for Finish.
	second := make(chan bool)
	go func() { _, f := s.Close(); second <- f }()
	select {
	case <-second:
		t.Fatal("second Close returned before Finish")
	case <-time.After(20 * time.Millisecond):
	}
	s.Finish()
	if f := <-second; f {
		t.Fatal("second Close reported first")
	}
	if !errors.Is(s.Err(), transport.ErrClosed) {
		t.Fatalf("Err after Finish: %v", s.Err())
	}
	if _, ok := s.Any(); ok {
		t.Fatal("closed set still holds channels")
	}
}
