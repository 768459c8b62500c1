// Package shrink holds a set for long-lived registries (the connections an
// acceptor tracks, the streams the overload manager tracks) whose storage
// follows its size down after a burst. A Go map never shrinks: one that
// once held 20,000 entries keeps their buckets for good, however few it
// holds afterwards.
package shrink

import (
	"iter"
	"maps"
)

// minPeak is the size below which a set is never rebuilt: what it keeps
// then is a few KiB.
const minPeak = 1024

// Set is a set of K. Once it has held at least 1,024 entries and falls
// to a sixteenth of the most it held since it was last rebuilt, Delete
// moves what is left to a new map sized for it, and the old buckets go to
// the garbage collector: each rebuild copies at most a fifteenth of the
// deletions since the last, so Add and Delete stay O(1) amortized. The
// zero value is an empty set ready to use. Not safe for concurrent use:
// its owner's lock guards it.
type Set[K comparable] struct {
	m    map[K]struct{}
	peak int // the most entries m held since it was made
}

// Add puts k in the set.
func (s *Set[K]) Add(k K) {
	if s.m == nil {
		s.m = make(map[K]struct{})
	}
	s.m[k] = struct{}{}
	s.peak = max(s.peak, len(s.m))
}

// Delete removes k from the set, if there, and rebuilds the map when it
// has shrunk enough.
func (s *Set[K]) Delete(k K) {
	delete(s.m, k)
	if s.peak < minPeak || len(s.m) > s.peak/16 {
		return
	}
	if len(s.m) == 0 {
		s.m, s.peak = nil, 0
		return
	}
	m := make(map[K]struct{}, len(s.m)) // not maps.Clone, which keeps the old size
	for k := range s.m {
		m[k] = struct{}{}
	}
	s.m, s.peak = m, len(m)
}

// Len is the number of entries.
func (s *Set[K]) Len() int { return len(s.m) }

// All yields the entries, in no order. The set must not change during
// the iteration.
func (s *Set[K]) All() iter.Seq[K] { return maps.Keys(s.m) }
