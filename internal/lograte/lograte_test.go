package lograte

import (
	"sync"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	sec := int64(time.Second)
	type step struct {
		at         int64 // nanoseconds from the first event
		ok         bool
		suppressed uint64
	}
	tests := []struct {
		name     string
		interval time.Duration
		steps    []step
	}{
		{"first line allowed", 0, []step{{0, true, 0}}},
		{"burst held back, then counted", 0, []step{
			{0, true, 0}, {1, false, 0}, {sec / 2, false, 0}, {sec - 1, false, 0}, {sec, true, 3},
		}},
		{"quiet interval reports none", 0, []step{{0, true, 0}, {5 * sec, true, 0}, {5*sec + 1, false, 0}, {7 * sec, true, 1}}},
		{"own interval", 100 * time.Millisecond, []step{
			{0, true, 0}, {sec / 20, false, 0}, {sec / 10, true, 1}, {sec / 10, false, 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Reason{Interval: tc.interval}
			base := time.Now().UnixNano()
			for i, s := range tc.steps {
				ok, n := r.allowAt(base + s.at)
				if ok != s.ok || n != s.suppressed {
					t.Fatalf("step %d at %v: Allow = %v, %d; want %v, %d", i, time.Duration(s.at), ok, n, s.ok, s.suppressed)
				}
			}
		})
	}
}

// TestFloodBacksOff: a reason that fires every 10 ms for a minute writes
// its lines at 0, 1, 3, 7, 15, 25, 35, 45 and 55 s, and every event is in
// a line or its count; after a quiet spell the interval is back to 1 s.
func TestFloodBacksOff(t *testing.T) {
	var r Reason
	base := time.Now().UnixNano()
	var lines []time.Duration
	var counted uint64
	const step, events = 10 * time.Millisecond, 6000
	for i := range events {
		at := time.Duration(i) * step
		if ok, n := r.allowAt(base + int64(at)); ok {
			lines = append(lines, at)
			counted += 1 + n
		}
	}
	want := []time.Duration{0, 1, 3, 7, 15, 25, 35, 45, 55}
	if len(lines) != len(want) {
		t.Fatalf("lines at %v, want %d lines", lines, len(want))
	}
	for i, at := range lines {
		if at != want[i]*time.Second {
			t.Fatalf("lines at %v, want at %v s", lines, want)
		}
	}
	if counted+r.Suppressed() != events {
		t.Fatalf("%d events in lines and %d held back, want %d", counted, r.Suppressed(), events)
	}
	// Quiet from 60 s; the line at 200 s reports those held back since
	// 55 s (a firing reason's line: the wait stays at its cap), the next
	// one, 10 s later, reports none and the interval is back to 1 s.
	at := base + int64(200*time.Second)
	if held, ok, n := r.Suppressed(), false, uint64(0); held == 0 {
		t.Fatal("nothing held back since the last line of the flood")
	} else if ok, n = r.allowAt(at); !ok || n != held {
		t.Fatalf("line after the flood: %v, %d; want true, %d", ok, n, held)
	}
	at += int64(10 * time.Second)
	if ok, n := r.allowAt(at); !ok || n != 0 {
		t.Fatalf("line after a quiet 10 s: %v, %d; want true, 0", ok, n)
	}
	if ok, _ := r.allowAt(at + int64(time.Second)); !ok {
		t.Fatal("the interval did not come back to 1 s after a quiet line")
	}
}

// TestAllowConcurrent: from many goroutines at once, one line is allowed
// per interval and every other event is held back and counted.
func TestAllowConcurrent(t *testing.T) {
	var r Reason
	const workers, each = 8, 1000
	now := time.Now().UnixNano()
	var mu sync.Mutex
	allowed := 0
	var reported uint64 // held back before the allowed line took its count
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if ok, n := r.allowAt(now); ok {
					mu.Lock()
					allowed++
					reported += n
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1 {
		t.Fatalf("%d lines allowed in one interval, want 1", allowed)
	}
	// Every other event is counted once: by the allowed line (those held
	// back before it swapped the count) or as still held back.
	held := r.Suppressed()
	if reported+held != workers*each-1 {
		t.Fatalf("reported %d + held back %d = %d, want %d", reported, held, reported+held, workers*each-1)
	}
	ok, n := r.allowAt(now + int64(time.Second))
	if !ok || n != held {
		t.Fatalf("next interval: Allow = %v, %d; want true, %d", ok, n, held)
	}
}

// BenchmarkAllowSuppressed is the flood's path: a line held back.
func BenchmarkAllowSuppressed(b *testing.B) {
	r := Reason{Interval: time.Hour}
	r.Allow()
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := r.Allow(); ok {
			b.Fatal("allowed within the interval")
		}
	}
}
