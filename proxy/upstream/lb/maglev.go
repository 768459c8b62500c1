package lb

import (
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// maglev is Envoy's MAGLEV: a lookup table of a prime size where each host
// fills slots in its own permutation order, in proportion to its weight.
type maglev struct {
	table []uint32 // host index per slot
	hosts []*Host
}

// newMaglev builds the table as Envoy's original implementation does: hosts
// sorted by address string; host i's permutation starts at
// xxHash64(addr, seed 0) mod size and steps by xxHash64(addr, seed 1) mod (size-1) + 1;
// in round r a host takes its next free slot when r*weight reaches its
// running target, which grows by the largest weight each time it does.
// weights, when not nil, stand for the hosts' weights (locality
// weighting's normalized ones).
func newMaglev(hosts []*Host, weights []float64, size uint64) picker {
	type build struct {
		key                  string
		host                 *Host
		offset, skip, next   uint64
		weight, targetWeight float64
	}
	weight := func(i int) float64 {
		if weights != nil {
			return weights[i]
		}
		return float64(max(hosts[i].Weight, 1))
	}
	var sum, maxShare float64
	for i := range hosts {
		sum += weight(i)
	}
	entries := make([]build, len(hosts))
	for i, h := range hosts {
		share := weight(i) / sum
		maxShare = max(maxShare, share)
		entries[i] = build{key: h.Addr.String(), host: h, weight: share}
	}
	slices.SortStableFunc(entries, func(a, b build) int { return strings.Compare(a.key, b.key) })
	m := &maglev{table: make([]uint32, size), hosts: make([]*Host, len(entries))}
	for i := range entries {
		e := &entries[i]
		m.hosts[i] = e.host
		e.offset = xxhash.Sum64String(e.key) % size
		e.skip = sum64Seed(e.key, 1)%(size-1) + 1
	}

	filled := make([]bool, size)
	var n uint64
	for round := 1.0; n < size; round++ {
		for i := range entries {
			if n == size {
				break
			}
			e := &entries[i]
			if round*e.weight < e.targetWeight {
				continue
			}
			e.targetWeight += maxShare
			c := (e.offset + e.skip*e.next) % size
			for filled[c] {
				e.next++
				c = (e.offset + e.skip*e.next) % size
			}
			m.table[c] = uint32(i)
			filled[c] = true
			e.next++
			n++
		}
	}
	return m
}

// pick looks the hash up. A re-pick flips most bits of the hash, as Envoy
// does, to land far from the rejected slot.
func (m *maglev) pick(hash uint64, attempt int) *Host {
	if attempt > 0 {
		hash ^= ^uint64(0) - uint64(attempt) + 1
	}
	return m.hosts[m.table[hash%uint64(len(m.table))]]
}

// sum64Seed is Envoy's HashUtil::xxHash64(s, seed): XXH64 with a seed
// (Maglev's skip uses seed 1). It runs only when a table is built.
func sum64Seed(s string, seed uint64) uint64 {
	d := xxhash.NewWithSeed(seed)
	d.WriteString(s)
	return d.Sum64()
}
