package drain

import (
	"context"
	"sync"
	"testing"

	"github.com/gowaypoint/waypoint/internal/memtest"
)

func TestCancelRunsWhatIsRegistered(t *testing.T) {
	c, cancel := New()
	var mu sync.Mutex
	ran := map[string]bool{}
	var wg sync.WaitGroup
	reg := func(name string) func() bool {
		wg.Add(1)
		return context.AfterFunc(c, func() {
			defer wg.Done()
			mu.Lock()
			ran[name] = true
			mu.Unlock()
		})
	}
	reg("a")
	stopB := reg("b")
	reg("c")
	if !stopB() {
		t.Fatal("stop of a registration in place: false")
	}
	wg.Done() // b never runs
	if stopB() {
		t.Error("second stop: true")
	}
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	if n := c.Len(); n != 3 {
		t.Errorf("Len = %d, want 3 (a, c, the child)", n)
	}
	if c.Err() != nil {
		t.Fatalf("Err before cancel: %v", c.Err())
	}
	cancel()
	cancel() // idempotent
	wg.Wait()
	<-child.Done()
	<-c.Done()
	if c.Err() != context.Canceled {
		t.Errorf("Err = %v, want context.Canceled", c.Err())
	}
	if !ran["a"] || ran["b"] || !ran["c"] {
		t.Errorf("ran %v, want a and c", ran)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len after cancel = %d", n)
	}
	// After the end: at once, and stop has nothing to stop.
	late := make(chan struct{})
	stop := context.AfterFunc(c, func() { close(late) })
	<-late
	if stop() {
		t.Error("stop of a registration made after the end: true")
	}
}

// TestNothingRetained registers n hooks the ways the connections do
// (context.AfterFunc, context.WithCancel, AfterFunc), ends them all and
// checks that the heap in use is back where it was: the drain context
// keeps nothing of them. A context.WithCancel parent would keep its
// children map's buckets (about 1 MB at 20,000).
func TestNothingRetained(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		name     string
		register func(c context.Context) (end func())
	}{
		{"context.AfterFunc", func(c context.Context) func() {
			stop := context.AfterFunc(c, func() {})
			return func() { stop() }
		}},
		{"context.WithCancel", func(c context.Context) func() {
			_, cancel := context.WithCancel(c)
			return cancel
		}},
		{"drain.AfterFunc", func(c context.Context) func() {
			stop := AfterFunc(c, func() {})
			return func() { stop() }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cancel := New()
			defer cancel()
			before := memtest.LiveHeap()
			ends := make([]func(), n)
			for i := range ends {
				ends[i] = tc.register(c)
			}
			held := memtest.LiveHeap() - before
			for _, end := range ends {
				end()
			}
			ends = nil
			left := memtest.LiveHeap() - before
			t.Logf("%d registrations: %d B in use while held, %d B left after they ended", n, held, left)
			if c.Len() != 0 {
				t.Errorf("Len = %d after every registration ended", c.Len())
			}
			if held < n*32 {
				t.Fatalf("%d B in use while %d registrations were held: the measure does not see them", held, n)
			}
			if left > 16<<10 {
				t.Errorf("%d B left in use after %d registrations ended (%d B while held): want at most 16 KiB", left, n, held)
			}
		})
	}
}

// TestAfterFuncOnAnotherContext: drain.AfterFunc on a context that is
// not a drain Context is context.AfterFunc.
func TestAfterFuncOnAnotherContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	AfterFunc(ctx, func() { close(ran) })
	stopped := AfterFunc(ctx, func() { t.Error("a stopped registration ran") })
	if !stopped() {
		t.Error("stop before the end: false")
	}
	cancel()
	<-ran
}
