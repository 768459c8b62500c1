package xds

import (
	"net/netip"
	"slices"
)

// prefixTable maps IP prefixes to values for longest-prefix-first lookups
// that do not allocate. Built at decode time, read-only afterwards.
type prefixTable[T any] struct {
	v4, v6 prefixFamily[T]
}

// prefixFamily holds the prefixes of one address family, indexed by the
// distinct prefix lengths in use, longest first.
type prefixFamily[T any] struct {
	bits []int
	m    map[netip.Prefix]T
}

func (t *prefixTable[T]) family(ip netip.Addr) *prefixFamily[T] {
	if ip.Is4() {
		return &t.v4
	}
	return &t.v6
}

// get returns the value stored for exactly the (masked) prefix p.
func (t *prefixTable[T]) get(p netip.Prefix) (T, bool) {
	v, ok := t.family(p.Addr()).m[p]
	return v, ok
}

// put stores v for the masked prefix p, replacing any earlier value.
func (t *prefixTable[T]) put(p netip.Prefix, v T) {
	f := t.family(p.Addr())
	if f.m == nil {
		f.m = make(map[netip.Prefix]T)
	}
	if _, ok := f.m[p]; !ok && !slices.Contains(f.bits, p.Bits()) {
		f.bits = append(f.bits, p.Bits())
		slices.SortFunc(f.bits, func(a, b int) int { return b - a })
	}
	f.m[p] = v
}

// at returns the value for the i-th longest prefix length in ip's family that
// contains ip, if one is stored. Callers loop i over 0..n(ip)-1 to visit the
// prefixes containing ip from the most to the least specific.
func (t *prefixTable[T]) at(ip netip.Addr, i int) (T, bool) {
	f := t.family(ip)
	p, _ := ip.Prefix(f.bits[i])
	v, ok := f.m[p]
	return v, ok
}

// n is the number of distinct prefix lengths stored for ip's family.
func (t *prefixTable[T]) n(ip netip.Addr) int { return len(t.family(ip).bits) }

// longest returns the value of the longest stored prefix containing ip.
func (t *prefixTable[T]) longest(ip netip.Addr) (T, bool) {
	for i := range t.n(ip) {
		if v, ok := t.at(ip, i); ok {
			return v, true
		}
	}
	var zero T
	return zero, false
}
