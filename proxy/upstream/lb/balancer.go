package lb

import (
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/xds"
)

// PickContext is what a request tells the balancer. The zero value (or a
// nil *PickContext) asks for any host.
type PickContext struct {
	// Hash is the request's hash (from the route's hash_policy), used by
	// RING_HASH and MAGLEV when HasHash; without it they pick at random.
	Hash    uint64
	HasHash bool
	// Exclude, when not nil, rejects a picked host, as Envoy's
	// retry_host_predicate (previous_hosts) does; the balancer then picks
	// again, up to HostSelectionMaxAttempts more times; if all were
	// rejected it takes a usable host that is not, where one is left
	// (Envoy returns the last host picked), else the last host picked. It runs on the picking
	// goroutine and must be cheap.
	Exclude func(*Host) bool
	// ExcludeAddrs rejects the hosts of these addresses, like Exclude
	// (either or both may be set): the previous hosts of a retry, as
	// filters.UpstreamRequest lists them, without a closure to allocate.
	ExcludeAddrs []netip.AddrPort
	// Destination is the stream's original destination: the host of a
	// cluster whose host is that destination (xds.Cluster.OriginalDestination).
	Destination netip.AddrPort
	// Prefer, when not nil and it accepts at least one of the hosts picked
	// from, restricts the pick to the hosts it accepts: the policy picks
	// as usual, a host it does not accept is picked again (once per host,
	// plus HostSelectionMaxAttempts), and if the policy keeps landing
	// elsewhere one of the accepted hosts is taken at random. When it
	// accepts none, it is ignored: the pick is over all hosts. A Dubbo
	// call's version and group select endpoints this way
	// (proxy/dubboconn). Like Exclude, it runs on the picking goroutine
	// and must be cheap.
	Prefer func(*Host) bool
	// HostSelectionMaxAttempts is the route's
	// host_selection_retry_max_attempts: how many times to re-pick after a
	// host is rejected. 0 means no re-pick.
	HostSelectionMaxAttempts int
}

// rejects reports whether pc rejects h.
func (pc *PickContext) rejects(h *Host) bool {
	if slices.Contains(pc.ExcludeAddrs, h.Addr) {
		return true
	}
	return pc.Exclude != nil && pc.Exclude(h)
}

// Balancer picks a host for a request.
type Balancer interface {
	// Pick returns a host, or nil when none is available. Safe for
	// concurrent use; it must not block on anything slow.
	Pick(pc *PickContext) *Host
}

// picker is one policy's selection over a fixed list of hosts. attempt is
// 0 for the first pick of a request and counts re-picks; hash policies use
// it to move away from a rejected host.
type picker interface {
	pick(hash uint64, attempt int) *Host
}

// hostSet is what Pick reads: immutable once stored.
type hostSet struct {
	all    []*Host // the cluster's hosts, config order
	usable []*Host // the hosts picked from: healthy ones, or all in panic
	panic  bool
	hashed bool   // the policy reads the request hash
	p      picker // nil when usable is empty
}

// pick runs the retry loop of Envoy's chooseHost around the picker.
func (s *hostSet) pick(pc *PickContext, rnd func() uint64) *Host {
	if s.p == nil {
		return nil
	}
	var (
		hash     uint64
		hasHash  bool
		attempts = 1
		filtered bool
	)
	if pc != nil {
		hash, hasHash = pc.Hash, pc.HasHash
		if filtered = pc.Exclude != nil || len(pc.ExcludeAddrs) > 0; filtered {
			attempts += max(pc.HostSelectionMaxAttempts, 0)
		}
	}
	if s.hashed && !hasHash {
		hash = rnd() // as Envoy: no hash, a random point
	}
	if pc != nil && pc.Prefer != nil && s.accepts(pc.Prefer) {
		return s.pickPreferred(pc, hash, attempts+len(s.usable), rnd)
	}
	var h *Host
	for i := range attempts {
		h = s.p.pick(hash, i)
		if h == nil || !filtered || !pc.rejects(h) {
			return h
		}
	}
	if attempts > 1 {
		// The policy kept landing on rejected hosts (requests picking
		// from the same round robin at once can do that): a usable host
		// they do not reject, if one is left, rather than a retry on the
		// host that just failed.
		if other := s.firstAccepted(pc, rnd); other != nil {
			return other
		}
	}
	return h
}

// firstAccepted returns a usable host pc does not reject, scanning from a
// random one, or nil.
func (s *hostSet) firstAccepted(pc *PickContext, rnd func() uint64) *Host {
	n := len(s.usable)
	start := int(rnd() % uint64(n))
	for i := range n {
		if h := s.usable[(start+i)%n]; !pc.rejects(h) {
			return h
		}
	}
	return nil
}

// accepts reports whether prefer accepts one of the usable hosts.
func (s *hostSet) accepts(prefer func(*Host) bool) bool {
	for _, h := range s.usable {
		if prefer(h) {
			return true
		}
	}
	return false
}

// pickPreferred picks among the hosts pc.Prefer accepts (at least one of
// the usable ones): the policy's pick when it lands on one within
// attempts, one of them at random otherwise; pc's rejections are obeyed
// where a preferred host is left that they do not reject.
func (s *hostSet) pickPreferred(pc *PickContext, hash uint64, attempts int, rnd func() uint64) *Host {
	var fallback *Host
	for i := range attempts {
		h := s.p.pick(hash, i)
		if h == nil {
			break
		}
		if !pc.Prefer(h) {
			continue
		}
		if !pc.rejects(h) {
			return h
		}
		fallback = h
	}
	n := len(s.usable)
	start := int(rnd() % uint64(n))
	for i := range n {
		h := s.usable[(start+i)%n]
		if pc.Prefer(h) && !pc.rejects(h) {
			return h
		}
		if fallback == nil && pc.Prefer(h) {
			fallback = h
		}
	}
	return fallback
}

// inPanic reports whether a host set with healthy of total hosts healthy
// balances over all of them: Envoy's panic rule for one priority level,
// with the overprovisioning factor in percent.
func inPanic(healthy, total int, threshold, factor uint32) bool {
	if total == 0 {
		return false
	}
	if availability(healthy, total, factor) == 100 {
		return false
	}
	return 100*float64(healthy)/float64(total) < float64(threshold)
}

// config is what a picker is built from, comparable so that an unchanged
// cluster keeps its picker across a reload.
type config struct {
	policy         xds.LBPolicy
	leastRequest   xds.LeastRequestConfig
	ringHash       xds.RingHashConfig
	maglev         xds.MaglevConfig
	slowStart      xds.SlowStartConfig // zero Window: off
	panicThreshold uint32
	// overprovisioning is the factor in percent; localityWeighted is
	// locality_weighted_lb_config (see priority.go).
	overprovisioning uint32
	localityWeighted bool
}

func configOf(cl *xds.Cluster) config {
	return config{
		policy:         cl.LBPolicy,
		leastRequest:   cl.LeastRequestOrDefault(),
		ringHash:       cl.RingHashOrDefault(),
		maglev:         cl.MaglevOrDefault(),
		slowStart:      slowStartOf(cl),
		panicThreshold: cl.PanicThreshold(),

		overprovisioning: cl.OverprovisioningFactorOrDefault(),
		localityWeighted: cl.LocalityWeighted(),
	}
}

// slowStartOf is the slow start of the cluster's policy, zero when off:
// Envoy has it for ROUND_ROBIN and LEAST_REQUEST only.
func slowStartOf(cl *xds.Cluster) xds.SlowStartConfig {
	if cl.SlowStart == nil || (cl.LBPolicy != xds.LBPolicyRoundRobin && cl.LBPolicy != xds.LBPolicyLeastRequest) {
		return xds.SlowStartConfig{}
	}
	return *cl.SlowStart
}

// newPicker builds the picker of cfg's policy over hosts (not empty);
// round robin continues from pos.
func (c *ClusterState) newPicker(cfg config, hosts []*Host, pos *atomic.Uint64) picker {
	if cfg.slowStart.Window > 0 {
		plain := cfg
		plain.slowStart = xds.SlowStartConfig{}
		return newSlowStart(hosts, cfg, c.m.clock.Now, c.newPicker(plain, hosts, pos))
	}
	rnd := c.m.rnd
	switch cfg.policy {
	case xds.LBPolicyLeastRequest:
		return newLeastRequest(hosts, cfg.leastRequest, rnd)
	case xds.LBPolicyRandom:
		return newRandom(hosts, rnd)
	case xds.LBPolicyRingHash:
		return newRing(hosts, nil, cfg.ringHash)
	case xds.LBPolicyMaglev:
		return newMaglev(hosts, nil, cfg.maglev.TableSize)
	default:
		return newRoundRobin(hosts, pos)
	}
}

// equalWeights reports whether all hosts have the same weight.
func equalWeights(hosts []*Host) bool {
	for _, h := range hosts[1:] {
		if h.Weight != hosts[0].Weight {
			return false
		}
	}
	return true
}
