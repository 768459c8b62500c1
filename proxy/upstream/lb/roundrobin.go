package lb

import (
	"math"
	"sync"
	"sync/atomic"
)

// maxCycleTable is the longest weighted round-robin cycle precomputed into
// a table (16 KiB of indexes); longer cycles run the EDF schedule live.
const maxCycleTable = 4096

// newRoundRobin returns ROUND_ROBIN over hosts, continuing from *pos, the
// cluster's position, which survives rebuilds. As in Envoy, equal weights
// rotate and unequal weights follow the earliest-deadline-first schedule:
// each host is due every 1/weight, so over sum(weights) picks each host is
// picked exactly weight times, interleaved.
func newRoundRobin(hosts []*Host, pos *atomic.Uint64) picker {
	if equalWeights(hosts) {
		return &rotation{hosts: hosts, pos: pos}
	}
	s := newEDF(hosts)
	if s.cycle <= maxCycleTable {
		t := &cycleTable{hosts: hosts, order: make([]uint32, s.cycle), pos: pos}
		for i := range t.order {
			t.order[i] = s.next()
		}
		return t
	}
	return &liveEDF{hosts: hosts, s: s}
}

// rotation picks hosts in turn.
type rotation struct {
	hosts []*Host
	pos   *atomic.Uint64
}

func (r *rotation) pick(uint64, int) *Host {
	return r.hosts[(r.pos.Add(1)-1)%uint64(len(r.hosts))]
}

// cycleTable replays one precomputed EDF cycle.
type cycleTable struct {
	hosts []*Host
	order []uint32 // host indexes, one cycle
	pos   *atomic.Uint64
}

func (t *cycleTable) pick(uint64, int) *Host {
	return t.hosts[t.order[(t.pos.Add(1)-1)%uint64(len(t.order))]]
}

// liveEDF runs the EDF schedule under a mutex held for one heap step.
type liveEDF struct {
	mu    sync.Mutex
	hosts []*Host
	s     *edf
}

func (l *liveEDF) pick(uint64, int) *Host {
	l.mu.Lock()
	i := l.s.next()
	l.mu.Unlock()
	return l.hosts[i]
}

// edf is an exact earliest-deadline-first schedule over static weights. A
// host's next deadline is (k+1)/w after k picks in the current cycle,
// compared by cross-multiplication so that no rounding can reorder a cycle
// (Envoy accumulates 1/w in floating point). Ties go to the lower index.
// Weights are divided by their gcd; after one cycle of sum(w) picks every k
// equals its w and all counts restart from 0, which keeps the products
// below 2^64 and the order unchanged.
type edf struct {
	heap  []edfEntry
	cycle uint64 // sum of the reduced weights
	done  uint64 // picks in the current cycle
}

type edfEntry struct {
	w, k uint64
	idx  uint32
}

func newEDF(hosts []*Host) *edf {
	ws := make([]uint64, len(hosts))
	for i, h := range hosts {
		ws[i] = uint64(max(h.Weight, 1))
	}
	return newEDFWeights(ws)
}

// newEDFWeights is the schedule over weights (each > 0); next returns
// indexes into weights.
func newEDFWeights(weights []uint64) *edf {
	g := uint64(0)
	for _, w := range weights {
		g = gcd(g, w)
	}
	s := &edf{heap: make([]edfEntry, len(weights))}
	for i, w := range weights {
		w /= g
		s.heap[i] = edfEntry{w: w, idx: uint32(i)}
		s.cycle += w
	}
	for i := len(s.heap)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
	return s
}

// next returns the index of the host due first and reschedules it.
func (s *edf) next() uint32 {
	top := &s.heap[0]
	i := top.idx
	top.k++
	s.down(0)
	if s.done++; s.done == s.cycle {
		s.done = 0
		for j := range s.heap {
			s.heap[j].k = 0
		}
	}
	return i
}

func (s *edf) less(a, b *edfEntry) bool {
	x, y := (a.k+1)*b.w, (b.k+1)*a.w
	return x < y || x == y && a.idx < b.idx
}

func (s *edf) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(&s.heap[r], &s.heap[l]) {
			m = r
		}
		if !s.less(&s.heap[m], &s.heap[i]) {
			return
		}
		s.heap[i], s.heap[m] = s.heap[m], s.heap[i]
		i = m
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// dynamicEDF is Envoy's EDF scheduler with floating-point weights that
// change over time: a picked host is rescheduled with its weight at that
// moment. Used by weighted LEAST_REQUEST. Not safe for concurrent use.
type dynamicEDF struct {
	heap  []dynEntry
	now   float64
	order uint64 // FIFO tie-breaker, as Envoy's order_offset
}

type dynEntry struct {
	deadline float64
	order    uint64
	idx      uint32
}

func (s *dynamicEDF) add(idx uint32, weight float64) {
	d := math.Inf(1)
	if weight > 0 {
		d = s.now + 1/weight
	}
	s.heap = append(s.heap, dynEntry{deadline: d, order: s.order, idx: idx})
	s.order++
	s.up(len(s.heap) - 1)
}

// next returns the index due first and reschedules it with weight(idx).
func (s *dynamicEDF) next(weight func(uint32) float64) uint32 {
	top := &s.heap[0]
	i := top.idx
	if !math.IsInf(top.deadline, 1) {
		s.now = top.deadline
	}
	w := weight(i)
	top.deadline = math.Inf(1)
	if w > 0 {
		top.deadline = s.now + 1/w
	}
	top.order = s.order
	s.order++
	s.down(0)
	return i
}

func (s *dynamicEDF) less(a, b *dynEntry) bool {
	return a.deadline < b.deadline || a.deadline == b.deadline && a.order < b.order
}

func (s *dynamicEDF) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(&s.heap[i], &s.heap[p]) {
			return
		}
		s.heap[i], s.heap[p] = s.heap[p], s.heap[i]
		i = p
	}
}

func (s *dynamicEDF) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(&s.heap[r], &s.heap[l]) {
			m = r
		}
		if !s.less(&s.heap[m], &s.heap[i]) {
			return
		}
		s.heap[i], s.heap[m] = s.heap[m], s.heap[i]
		i = m
	}
}
