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
