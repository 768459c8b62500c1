package lb

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/xds"
)

// Priorities and localities, as Envoy balances them (its priority levels,
// panic threshold and locality weighted load balancing):
//
//   - A priority level's availability is min(100, overprovisioning factor ×
//     healthy hosts / hosts), in integer percent; the normalized total is
//     the sum of the levels', capped at 100.
//   - Each level, from priority 0 down, takes min(what is left, its
//     availability × 100 / normalized total) percent of the requests: with
//     enough healthy hosts everything stays on priority 0, and what a level
//     lacks spills to the next. Rounding leftovers go to the first level
//     with availability.
//   - Panic is decided per level and only when the normalized total is
//     below 100: a level whose healthy share is below the panic threshold
//     balances over all its hosts (ignoring localities). When every level
//     is in panic, the load is shared by host count.
//   - With locality_weighted_lb_config, a request's level picks a locality
//     first, by an exact weighted round robin over effective weights
//     (locality weight × min(100%, overprovisioning factor × healthy share
//     of the locality)), then a host of that locality by the policy.
//     Localities without a weight take nothing. RING_HASH and MAGLEV
//     instead build one ring or table over the level's usable hosts, each
//     weighted by its share of its locality's host weight times its
//     locality's share of the locality weights, as Envoy's hash balancers
//     do (raw locality weights, in panic too).
//
// Health is outlier detection's: an ejected host is unhealthy, so its
// level loses its share. A cluster with one priority and no locality
// weighting builds none of this and picks as before.

// needsLevels reports whether a cluster's hosts are balanced through
// priority levels: more than one priority, or locality weighting.
func needsLevels(cfg config, hosts []*Host) bool {
	if cfg.localityWeighted {
		return true
	}
	for _, h := range hosts {
		if h.Priority != hosts[0].Priority {
			return true
		}
	}
	return false
}

// levelHosts is one priority's hosts and how many of them are healthy.
type levelHosts struct {
	priority uint32
	hosts    []*Host // config order
	healthy  int
}

// groupLevels splits hosts by priority, lowest number first.
func groupLevels(hosts []*Host) []levelHosts {
	var levels []levelHosts
	for _, h := range hosts {
		i := slices.IndexFunc(levels, func(l levelHosts) bool { return l.priority == h.Priority })
		if i < 0 {
			levels = append(levels, levelHosts{priority: h.Priority})
			i = len(levels) - 1
		}
		levels[i].hosts = append(levels[i].hosts, h)
		if !h.s.ejected.Load() {
			levels[i].healthy++
		}
	}
	slices.SortFunc(levels, func(a, b levelHosts) int { return int(int64(a.priority) - int64(b.priority)) })
	return levels
}

// availability is min(100, factor × healthy / total) in integer percent.
func availability(healthy, total int, factor uint32) uint32 {
	if total == 0 {
		return 0
	}
	return uint32(min(100, uint64(factor)*uint64(healthy)/uint64(total)))
}

// priorityLoad returns each level's share of requests in percent (summing
// to 100) and whether each is in panic, as Envoy computes them.
func priorityLoad(levels []levelHosts, factor, threshold uint32) (load []uint32, panicked []bool) {
	load = make([]uint32, len(levels))
	panicked = make([]bool, len(levels))
	avail := make([]uint32, len(levels))
	var total uint32
	for i, l := range levels {
		avail[i] = availability(l.healthy, len(l.hosts), factor)
		total += avail[i]
	}
	total = min(total, 100)
	allPanic := total < 100
	if total < 100 {
		for i, l := range levels {
			panicked[i] = 100*float64(l.healthy)/float64(len(l.hosts)) < float64(threshold)
			allPanic = allPanic && panicked[i]
		}
	}
	left := uint32(100)
	switch {
	case allPanic: // too few healthy hosts anywhere: share by host count
		n := 0
		for _, l := range levels {
			n += len(l.hosts)
		}
		for i, l := range levels {
			load[i] = uint32(100 * len(l.hosts) / n)
			left -= load[i]
		}
		load[0] += left
		return load, panicked
	case total == 0: // nothing healthy and no panic: priority 0 answers
		load[0] = 100
		return load, panicked
	}
	for i := range levels {
		load[i] = min(left, avail[i]*100/total)
		left -= load[i]
	}
	if left > 0 {
		for i := range levels {
			if avail[i] > 0 {
				load[i] += left
				break
			}
		}
	}
	return load, panicked
}

// buildLevels makes the picker over hosts' priority levels.
func (c *ClusterState) buildLevels(hosts []*Host) (p picker, anyPanic bool) {
	levels := groupLevels(hosts)
	load, panicked := priorityLoad(levels, c.cfg.overprovisioning, c.cfg.panicThreshold)
	pp := &priorityPicker{rnd: c.m.rnd, hashed: c.cfg.policy == xds.LBPolicyRingHash || c.cfg.policy == xds.LBPolicyMaglev,
		cum: make([]uint32, len(levels)), levels: make([]picker, len(levels))}
	var cum uint32
	for i, l := range levels {
		cum += load[i]
		pp.cum[i] = cum
		if load[i] == 0 {
			continue
		}
		anyPanic = anyPanic || panicked[i]
		usable := l.hosts
		if !panicked[i] && l.healthy < len(l.hosts) {
			usable = healthyOf(l.hosts, l.healthy)
		}
		switch {
		case len(usable) == 0:
		case c.cfg.localityWeighted && pp.hashed:
			pp.levels[i] = c.newHashedLocalityPicker(usable)
		case c.cfg.localityWeighted && !panicked[i]:
			pp.levels[i] = c.newLocalityPicker(l.hosts)
		default:
			pp.levels[i] = c.newPicker(c.cfg, usable, c.newPos())
		}
	}
	return pp, anyPanic
}

// newPos is a balancing position of its own for one level or locality,
// started at random as the cluster's is.
func (c *ClusterState) newPos() *atomic.Uint64 {
	pos := new(atomic.Uint64)
	pos.Store(c.m.rnd())
	return pos
}

// healthyOf returns the hosts not ejected; n is how many there are.
func healthyOf(hosts []*Host, n int) []*Host {
	out := make([]*Host, 0, n)
	for _, h := range hosts {
		if !h.s.ejected.Load() {
			out = append(out, h)
		}
	}
	return out
}

// priorityPicker picks a level by its load, then a host of it.
type priorityPicker struct {
	rnd    func() uint64
	hashed bool     // the level follows the request hash, as Envoy's hash policies
	cum    []uint32 // cumulative load in percent; the last is 100
	levels []picker // nil: the level has no host to give
}

func (pp *priorityPicker) pick(hash uint64, attempt int) *Host {
	r := hash
	if !pp.hashed {
		r = pp.rnd()
	}
	pct := uint32(r % 100)
	for i, c := range pp.cum {
		if pct < c {
			if pp.levels[i] == nil {
				return nil
			}
			return pp.levels[i].pick(hash, attempt)
		}
	}
	return nil
}

// newLocalityPicker returns the picker of one level (not in panic) under
// locality weighting, or nil when no locality has an effective weight.
func (c *ClusterState) newLocalityPicker(hosts []*Host) picker {
	type locality struct {
		key            xds.Locality
		weight         uint32
		hosts          []*Host
		healthy, total int
	}
	var locs []locality
	for _, h := range hosts {
		i := slices.IndexFunc(locs, func(l locality) bool { return l.key == h.Locality })
		if i < 0 {
			locs = append(locs, locality{key: h.Locality, weight: h.LocalityWeight})
			i = len(locs) - 1
		}
		locs[i].total++
		if !h.s.ejected.Load() {
			locs[i].healthy++
			locs[i].hosts = append(locs[i].hosts, h)
		}
	}
	lp := &localityPicker{}
	var weights []uint64
	for _, l := range locs {
		// Basis points rather than percent keep 1 of 3 healthy at 46.66%.
		avail := min(10000, uint64(c.cfg.overprovisioning)*100*uint64(l.healthy)/uint64(l.total))
		if w := uint64(l.weight) * avail; w > 0 {
			weights = append(weights, w)
			lp.locs = append(lp.locs, c.newPicker(c.cfg, l.hosts, c.newPos()))
		}
	}
	if len(lp.locs) == 0 {
		return nil
	}
	if len(lp.locs) == 1 {
		return lp.locs[0]
	}
	s := newEDFWeights(weights)
	if s.cycle <= maxCycleTable {
		lp.order = make([]uint32, s.cycle)
		for i := range lp.order {
			lp.order[i] = s.next()
		}
		lp.pos.Store(c.m.rnd())
	} else {
		lp.live = s
	}
	return lp
}

// localityPicker picks a locality by the EDF schedule of its effective
// weight, then a host of it.
type localityPicker struct {
	locs  []picker
	order []uint32 // one EDF cycle of locality indexes, when short
	pos   atomic.Uint64
	mu    sync.Mutex // guards live
	live  *edf       // the schedule, when too long for order
}

func (lp *localityPicker) pick(hash uint64, attempt int) *Host {
	var i uint32
	if lp.order != nil {
		i = lp.order[(lp.pos.Add(1)-1)%uint64(len(lp.order))]
	} else {
		lp.mu.Lock()
		i = lp.live.next()
		lp.mu.Unlock()
	}
	return lp.locs[i].pick(hash, attempt)
}

// newHashedLocalityPicker is RING_HASH or MAGLEV over one level's usable
// hosts under locality weighting: a host's weight is its share of its
// locality's host weights times its locality's share of the weights of the
// localities that have usable hosts. Hosts of localities without a weight
// are left out; nil when none is left.
func (c *ClusterState) newHashedLocalityPicker(usable []*Host) picker {
	type locality struct {
		key        xds.Locality
		weight     uint32
		hostWeight float64
	}
	var locs []locality
	var total float64
	for _, h := range usable {
		i := slices.IndexFunc(locs, func(l locality) bool { return l.key == h.Locality })
		if i < 0 {
			locs = append(locs, locality{key: h.Locality, weight: h.LocalityWeight})
			i = len(locs) - 1
			total += float64(h.LocalityWeight)
		}
		locs[i].hostWeight += float64(max(h.Weight, 1))
	}
	if total == 0 {
		return nil
	}
	var hosts []*Host
	var weights []float64
	for _, h := range usable {
		l := locs[slices.IndexFunc(locs, func(l locality) bool { return l.key == h.Locality })]
		if l.weight == 0 {
			continue
		}
		hosts = append(hosts, h)
		weights = append(weights, float64(max(h.Weight, 1))/l.hostWeight*float64(l.weight)/total)
	}
	if c.cfg.policy == xds.LBPolicyMaglev {
		return newMaglev(hosts, weights, c.cfg.maglev.TableSize)
	}
	return newRing(hosts, weights, c.cfg.ringHash)
}
