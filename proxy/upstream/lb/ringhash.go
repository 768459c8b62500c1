package lb

import (
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/gowaypoint/waypoint/xds"
)

// ring is Envoy's RING_HASH: a sorted ring of host hashes; a request hash
// maps to the first entry at or after it, wrapping to the first entry.
type ring struct {
	hashes []uint64 // sorted
	idx    []uint32 // host index of each entry
	hosts  []*Host
}

// newRing builds the ring as Envoy does: weights are normalized to sum 1;
// the scale makes the lightest host get ceil(minimum_ring_size * its
// share) entries, capped at maximum_ring_size; hosts then get
// scale*share entries each, by running sums so that fractions carry over.
// Entry n of a host hashes "ip:port_n" with xxHash64. weights, when not
// nil, stand for the hosts' weights (locality weighting's normalized ones).
func newRing(hosts []*Host, weights []float64, cfg xds.RingHashConfig) picker {
	weight := func(i int) float64 {
		if weights != nil {
			return weights[i]
		}
		return float64(max(hosts[i].Weight, 1))
	}
	var sum float64
	for i := range hosts {
		sum += weight(i)
	}
	minShare := math.Inf(1)
	for i := range hosts {
		minShare = min(minShare, weight(i)/sum)
	}
	scale := min(math.Ceil(minShare*float64(cfg.MinimumRingSize))/minShare, float64(cfg.MaximumRingSize))
	size := int(math.Ceil(scale))

	type entry struct {
		hash uint64
		idx  uint32
	}
	entries := make([]entry, 0, size)
	var current, target float64
	key := make([]byte, 0, 64)
	for i, h := range hosts {
		key = append(h.Addr.AppendTo(key[:0]), '_')
		base := len(key)
		target += scale * weight(i) / sum
		for n := uint64(0); current < target; n++ {
			key = strconv.AppendUint(key[:base], n, 10)
			entries = append(entries, entry{hash: xxhash.Sum64(key), idx: uint32(i)})
			current++
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.idx) - int(b.idx)
	})
	r := &ring{hashes: make([]uint64, len(entries)), idx: make([]uint32, len(entries)), hosts: hosts}
	for i, e := range entries {
		r.hashes[i], r.idx[i] = e.hash, e.idx
	}
	return r
}

// pick finds the entry for hash. A re-pick (attempt > 0) moves attempt
// entries along the ring, as Envoy does, which usually but not always
// lands on another host.
func (r *ring) pick(hash uint64, attempt int) *Host {
	n := len(r.hashes)
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hashes[m] < hash {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == n {
		lo = 0
	}
	if attempt > 0 {
		lo = (lo + attempt) % n
	}
	return r.hosts[r.idx[lo]]
}
