package lb

import "math/bits"

// newRandom returns RANDOM over hosts: uniform when weights are equal,
// otherwise in proportion to weight by a binary search over cumulative
// weights.
func newRandom(hosts []*Host, rnd func() uint64) picker {
	if equalWeights(hosts) {
		return &uniform{hosts: hosts, rnd: rnd}
	}
	w := &weightedRandom{hosts: hosts, cum: make([]uint64, len(hosts)), rnd: rnd}
	var sum uint64
	for i, h := range hosts {
		sum += uint64(max(h.Weight, 1))
		w.cum[i] = sum
	}
	return w
}

type uniform struct {
	hosts []*Host
	rnd   func() uint64
}

func (u *uniform) pick(uint64, int) *Host {
	return u.hosts[below(u.rnd(), uint64(len(u.hosts)))]
}

type weightedRandom struct {
	hosts []*Host
	cum   []uint64 // cum[i] = sum of weights of hosts[0..i]
	rnd   func() uint64
}

func (w *weightedRandom) pick(uint64, int) *Host {
	r := below(w.rnd(), w.cum[len(w.cum)-1])
	lo, hi := 0, len(w.cum)-1
	for lo < hi { // first i with cum[i] > r
		m := int(uint(lo+hi) >> 1)
		if w.cum[m] > r {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return w.hosts[lo]
}

// below maps a random r to [0, n) by multiplying and keeping the high word
// (Lemire), cheaper than a division; the bias is below n/2^64.
func below(r, n uint64) uint64 {
	hi, _ := bits.Mul64(r, n)
	return hi
}
