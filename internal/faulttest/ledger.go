package faulttest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IDWidth is the length of a message id: decimal digits, zero-padded, so
// that every line of a consumer's file is IDWidth+1 bytes long.
const IDWidth = 9

// FormatID returns the id of message n.
func FormatID(n int) string { return fmt.Sprintf("%0*d", IDWidth, n) }

// ParseID returns the number of an id, or false if s is not one.
func ParseID(s string) (int, bool) {
	if len(s) != IDWidth || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// Outcome is what the publisher learned about one message.
type Outcome uint8

// The outcomes of a publish.
const (
	// NotSent: the number was never handed to the producer.
	NotSent Outcome = iota
	// Confirmed: Publish returned nil, so Redis holds the message.
	Confirmed
	// Uncertain: Publish returned an error; the message may or may not be in
	// Redis (the connection broke with the command sent). It is never
	// published again under the same id, so it counts neither as lost nor,
	// when it is delivered once, as a duplicate.
	Uncertain
)

// Ledger numbers messages and records what became of their publishes, and
// when. It is safe for concurrent use.
type Ledger struct {
	start time.Time

	mu       sync.Mutex
	outcomes []Outcome
	at       []time.Duration // publish time, since start
}

// NewLedger returns an empty ledger whose clock starts now.
func NewLedger() *Ledger { return &Ledger{start: time.Now()} }

// Since returns the time elapsed since the ledger was created: the time
// base of its publish times (and of the tests' fault logs).
func (l *Ledger) Since() time.Duration { return time.Since(l.start) }

// Reserve returns the numbers of the next n messages.
func (l *Ledger) Reserve(n int) (first int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first = len(l.outcomes)
	now := time.Since(l.start)
	for range n {
		l.outcomes = append(l.outcomes, NotSent)
		l.at = append(l.at, now)
	}
	return first
}

// Record sets the outcome of messages first..first+n-1.
func (l *Ledger) Record(first, n int, o Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Since(l.start)
	for i := first; i < first+n; i++ {
		l.outcomes[i] = o
		l.at[i] = now
	}
}

// Reserved returns how many numbers were handed out.
func (l *Ledger) Reserved() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.outcomes)
}

// PublishedAt returns when message n's publish returned, since the start.
func (l *Ledger) PublishedAt(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at[n]
}

// Tally is the comparison of a ledger with a consumer's file.
type Tally struct {
	Published  int   // confirmed publishes
	Uncertain  int   // publishes that failed (may or may not be in Redis)
	Delivered  int   // lines written: every delivery, duplicates included
	Distinct   int   // distinct ids written
	Lost       int   // confirmed ids never written
	Duplicated int   // Delivered - Distinct
	Foreign    int   // lines that are no id this ledger handed out, or not whole lines
	LostIDs    []int // the lost numbers, in order
	DupIDs     []int // the numbers written more than once, in order
}

// String is the one-line report of a test.
func (t Tally) String() string {
	s := fmt.Sprintf("published %d / delivered %d / lost %d / duplicated %d (distinct %d",
		t.Published, t.Delivered, t.Lost, t.Duplicated, t.Distinct)
	if t.Uncertain > 0 {
		s += fmt.Sprintf(", %d failed publishes", t.Uncertain)
	}
	if t.Foreign > 0 {
		s += fmt.Sprintf(", %d foreign lines", t.Foreign)
	}
	return s + ")"
}

// Tally compares the ledger with the lines a consumer wrote (one id per
// line).
func (l *Ledger) Tally(file []byte) Tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t Tally
	seen := make([]int, len(l.outcomes))
	for len(file) > 0 {
		line, rest, whole := bytes.Cut(file, []byte("\n"))
		file = rest
		n, ok := ParseID(string(line))
		if !whole || !ok || n >= len(l.outcomes) || l.outcomes[n] == NotSent {
			t.Foreign++
			continue
		}
		t.Delivered++
		seen[n]++
	}
	for n, o := range l.outcomes {
		switch o {
		case Confirmed:
			t.Published++
			if seen[n] == 0 {
				t.Lost++
				t.LostIDs = append(t.LostIDs, n)
			}
		case Uncertain:
			t.Uncertain++
		}
		if seen[n] > 0 {
			t.Distinct++
		}
		if seen[n] > 1 {
			t.DupIDs = append(t.DupIDs, n)
		}
	}
	t.Duplicated = t.Delivered - t.Distinct
	return t
}
