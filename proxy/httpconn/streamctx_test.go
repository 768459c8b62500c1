package httpconn

import (
	"context"
	"sync"
	"testing"
	"time"
)

// recorder is a filters.CancelHandler that records the tags it is called
// with.
type recorder struct {
	mu   sync.Mutex
	tags []uint64
	wg   sync.WaitGroup
}

func (r *recorder) StreamCancelled(tag uint64) {
	r.mu.Lock()
	r.tags = append(r.tags, tag)
	r.mu.Unlock()
	r.wg.Done()
}

func (r *recorder) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.tags...)
}

// TestStreamCtx: registrations are told of the cancellation once, unless
// stopped (or forgotten between requests); one made after it is told at
// once; the context ends as context.Context says; children made with
// context.WithCancel end with it.
func TestStreamCtx(t *testing.T) {
	cases := []struct {
		name     string
		register int // registrations, tags 1..register
		stop     []int
		forget   bool
		want     int // handlers called
	}{
		{"one", 1, nil, false, 1},
		{"beyond the fixed slots", 7, nil, false, 7},
		{"stopped", 3, []int{0, 2}, false, 1},
		{"stopped beyond the slots", 6, []int{5}, false, 5},
		{"forgotten", 5, nil, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := newStreamCtx(context.Background())
			var r recorder
			ids := make([]uint64, tc.register)
			for i := range ids {
				ids[i] = x.NotifyCancel(&r, uint64(i+1))
			}
			for _, i := range tc.stop {
				if !x.StopNotify(ids[i]) {
					t.Fatalf("StopNotify(%d) false before the cancellation", i)
				}
				if x.StopNotify(ids[i]) {
					t.Fatalf("StopNotify(%d) true twice", i)
				}
			}
			if tc.forget {
				x.forget()
			}
			if x.Err() != nil {
				t.Fatal("Err before cancel")
			}
			r.wg.Add(tc.want)
			x.cancel()
			x.cancel()
			r.wg.Wait()
			if x.Err() != context.Canceled {
				t.Fatalf("Err %v after cancel", x.Err())
			}
			select {
			case <-x.Done():
			default:
				t.Fatal("Done open after cancel")
			}
			if got := len(r.got()); got != tc.want {
				t.Fatalf("%d handlers called, want %d", got, tc.want)
			}
			for _, id := range ids {
				if x.StopNotify(id) {
					t.Fatal("StopNotify true after the cancellation")
				}
			}
			// A registration after the cancellation is told at once.
			r.wg.Add(1)
			x.NotifyCancel(&r, 99)
			r.wg.Wait()
		})
	}

	t.Run("children", func(t *testing.T) {
		x := newStreamCtx(context.WithValue(context.Background(), ctxKey{}, "v"))
		child, cancel := context.WithTimeout(x, time.Hour)
		defer cancel()
		if child.Value(ctxKey{}) != "v" {
			t.Fatal("the parent's values are lost")
		}
		x.cancel()
		select {
		case <-child.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a child did not end with the context")
		}
	})
}

type ctxKey struct{}

// TestStreamCtxNoAllocation: what the upstream does for every exchange,
// NotifyCancel then StopNotify, allocates nothing.
func TestStreamCtxNoAllocation(t *testing.T) {
	x := newStreamCtx(context.Background())
	var r recorder
	if n := testing.AllocsPerRun(100, func() {
		id := x.NotifyCancel(&r, 1)
		x.StopNotify(id)
	}); n != 0 {
		t.Fatalf("%v allocations per exchange, want 0", n)
	}
}
