package shrink

import (
	"runtime"
	"testing"

	"github.com/gowaypoint/waypoint/internal/memtest"
)

// TestSetFollowsItsSizeDown: after a burst of n entries, of which keep
// stay, the heap in use is at most an eighth of the burst's (a map of at
// most n/16 entries), not the burst's buckets.
func TestSetFollowsItsSizeDown(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		name string
		keep int
	}{
		{"all deleted", 0},
		{"some stay", 10},
		{"below the rebuild size", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := make([]*int, n)
			for i := range keys {
				keys[i] = new(int)
			}
			before := memtest.LiveHeap()
			var s Set[*int]
			for _, k := range keys {
				s.Add(k)
			}
			held := memtest.LiveHeap() - before
			for _, k := range keys[tc.keep:] {
				s.Delete(k)
			}
			left := memtest.LiveHeap() - before
			t.Logf("%d entries: %d B in use; %d left: %d B", n, held, tc.keep, left)
			if s.Len() != tc.keep {
				t.Fatalf("Len = %d, want %d", s.Len(), tc.keep)
			}
			seen := 0
			for k := range s.All() {
				if k != keys[seen] && *k != 0 {
					t.Fatal("an entry that was not added")
				}
				seen++
			}
			if seen != tc.keep {
				t.Errorf("All yields %d entries, want %d", seen, tc.keep)
			}
			if held < n*8 {
				t.Fatalf("%d B in use with %d entries: the measure does not see them", held, n)
			}
			if left > held/8 {
				t.Errorf("%d B left in use with %d of %d entries (%d B with all): want at most an eighth", left, tc.keep, n, held)
			}
			runtime.KeepAlive(keys)
		})
	}
}

// TestSetNotRebuiltBelowMinPeak: a set that never held 1,024 entries
// keeps its map (a rebuild would cost more than it saves).
func TestSetNotRebuiltBelowMinPeak(t *testing.T) {
	var s Set[int]
	for i := range minPeak - 1 {
		s.Add(i)
	}
	for i := range minPeak - 2 {
		s.Delete(i)
	}
	if s.Len() != 1 || s.peak != minPeak-1 {
		t.Errorf("Len %d, peak %d: want 1 and %d (not rebuilt)", s.Len(), s.peak, minPeak-1)
	}
}
