package lb

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// Manager keeps the balancing state of every cluster across snapshots. It
// is safe for concurrent use: Cluster and picking never lock; Update and
// Close are serialized.
type Manager struct {
	clock Clock
	rnd   func() uint64 // concurrency-safe random source

	clusters atomic.Pointer[map[string]*ClusterState] // replaced whole by Update

	mu     sync.Mutex // serializes Update and Close
	closed bool
	timers sync.WaitGroup // interval timers armed or running

	resolver Resolver       // DNS clusters' names; set before the first Update
	dnsRuns  sync.WaitGroup // DNS resolution goroutines (dns.go)
}

// NewManager returns a Manager with no clusters. clock drives outlier
// detection; nil means real time.
func NewManager(clock Clock) *Manager {
	if clock == nil {
		clock = realClock{}
	}
	m := &Manager{clock: clock, rnd: rand.Uint64}
	m.clusters.Store(&map[string]*ClusterState{})
	return m
}

// Update makes snap's clusters current: a cluster of a known name keeps
// its breakers, round-robin position and the live state of hosts whose
// address it still has; a new name starts afresh; the state of clusters
// snap does not have is dropped and their timers stopped. Pickers are
// rebuilt only for clusters whose hosts or balancing options changed.
// After Close, Update does nothing.
func (m *Manager) Update(snap *xds.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	old := *m.clusters.Load()
	next := make(map[string]*ClusterState, len(old))
	var gone []Attachment
	if snap != nil {
		for name, cl := range snap.Clusters {
			c := old[name]
			if c == nil {
				c = newClusterState(m, name)
			}
			gone = c.update(cl, gone)
			next[name] = c
		}
	}
	m.clusters.Store(&next)
	for name, c := range old {
		if next[name] == nil {
			gone = c.close(gone)
		}
	}
	closeAttachments(gone)
}

// Cluster returns the state of the named cluster of the last Update, or
// nil.
func (m *Manager) Cluster(name string) *ClusterState {
	return (*m.clusters.Load())[name]
}

// Close stops every cluster's interval timer, waits for a timer callback in
// flight, and forgets all clusters. Requests in flight may still end
// (their Host's end function stays valid) but no host is ejected or
// returned any more.
func (m *Manager) Close() {
	m.mu.Lock()
	var gone []Attachment
	if !m.closed {
		m.closed = true
		for _, c := range *m.clusters.Load() {
			gone = c.close(gone)
		}
		m.clusters.Store(&map[string]*ClusterState{})
	}
	m.mu.Unlock()
	closeAttachments(gone)
	m.timers.Wait()
	m.dnsRuns.Wait()
}

// ClusterState is one cluster's balancer, breakers and host health. It is
// kept across snapshots for as long as the cluster's name is. Safe for
// concurrent use.
type ClusterState struct {
	name     string
	m        *Manager
	breakers *Breakers
	rr       atomic.Uint64                        // round-robin position, kept across rebuilds
	set      atomic.Pointer[hostSet]              // what Pick reads
	outlier  atomic.Pointer[xds.OutlierDetection] // nil: disabled
	origDst  atomic.Bool                          // the host is the stream's destination (see origdst.go)
	dsts     origDstHosts

	mu       sync.Mutex // guards the fields below, the mu-guarded fields of hostState, and rebuilds
	cfg      config
	hosts    []*Host                       // config order
	states   map[netip.AddrPort]*hostState // by address
	order    []*hostState                  // states in config order, once each
	timer    Timer                         // the armed interval timer, or nil
	timerGen uint64                        // invalidates callbacks of stopped timers
	interval time.Duration                 // the armed timer's interval
	closed   bool

	dns          *dnsRun        // the running resolution of a DNS cluster, or nil
	dnsEndpoints []xds.Endpoint // the addresses it last found, as endpoints
}

func newClusterState(m *Manager, name string) *ClusterState {
	c := &ClusterState{name: name, m: m, breakers: NewBreakers(xds.DefaultThresholds)}
	c.rr.Store(m.rnd()) // as Envoy: proxies do not all start on the same host
	c.set.Store(&hostSet{})
	return c
}

// Name returns the cluster's name.
func (c *ClusterState) Name() string { return c.name }

// Pick returns a host for a request, or nil when the cluster has none
// available. It implements Balancer.
func (c *ClusterState) Pick(pc *PickContext) *Host {
	if c.origDst.Load() {
		return c.originalDstHost(pc.Destination)
	}
	return c.set.Load().pick(pc, c.m.rnd)
}

// Balancer returns c as a Balancer.
func (c *ClusterState) Balancer() Balancer { return c }

// Breakers returns the cluster's circuit breakers.
func (c *ClusterState) Breakers() *Breakers { return c.breakers }

// Hosts returns the cluster's hosts in config order. The slice is shared
// and must not be modified.
func (c *ClusterState) Hosts() []*Host { return c.set.Load().all }

// Panic reports whether the cluster balances over all its hosts because
// too few are healthy (the healthy panic threshold).
func (c *ClusterState) Panic() bool { return c.set.Load().panic }

// update applies one snapshot's version of the cluster. It appends to gone
// the attachments of the hosts that left, for the caller to close once no
// lock is held. A DNS cluster's hosts are the addresses its resolution
// last found (dns.go), which this starts, keeps or restarts.
func (c *ClusterState) update(cl *xds.Cluster, gone []Attachment) []Attachment {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.breakers.SetThresholds(cl.ThresholdsOrDefault())

	eps := cl.Endpoints
	if cl.DNS != nil {
		c.resolveLocked(cl)
		eps = c.dnsEndpoints
	} else {
		c.stopDNSLocked()
		c.dnsEndpoints = nil
	}
	c.origDst.Store(cl.OriginalDestination)
	cfg := configOf(cl)
	cfgChanged := cfg != c.cfg
	c.cfg = cfg
	changed, gone := c.setHostsLocked(eps, gone)
	changed = changed || cfgChanged

	od := cl.OutlierDetection
	c.outlier.Store(od)
	if od == nil {
		c.stopTimerLocked()
		for _, s := range c.order {
			if s.ejected.Load() {
				c.unejectLocked(s, c.m.clock.Now())
				changed = true
			}
		}
	} else if c.timer == nil || c.interval != od.Interval {
		c.stopTimerLocked()
		c.armLocked(od.Interval)
	}
	if changed {
		c.rebuildLocked()
	}
	return gone
}

// setHostsLocked makes eps the cluster's hosts, keeping the live state of
// the addresses it still has. It reports whether the hosts changed (the
// caller rebuilds) and appends to gone the attachments of the hosts that
// left.
func (c *ClusterState) setHostsLocked(eps []xds.Endpoint, gone []Attachment) (bool, []Attachment) {
	prev := make(map[netip.AddrPort]*Host, len(c.hosts))
	for _, h := range c.hosts {
		if prev[h.Addr] == nil {
			prev[h.Addr] = h
		}
	}
	states := make(map[netip.AddrPort]*hostState, len(eps))
	order := make([]*hostState, 0, len(eps))
	hosts := make([]*Host, len(eps))
	for i, ep := range eps {
		s := states[ep.Address]
		if s == nil {
			if s = c.states[ep.Address]; s == nil {
				s = newHostState(c)
			}
			states[ep.Address] = s
			order = append(order, s)
		}
		w := max(ep.Weight, 1)
		if h := prev[ep.Address]; h != nil && h.s == s && h.Weight == w && h.Identity == ep.Identity &&
			h.Priority == ep.Priority && h.Locality == ep.Locality && h.LocalityWeight == ep.LocalityWeight &&
			slices.Equal(h.Additional, ep.AdditionalAddresses) {
			hosts[i] = h
		} else {
			hosts[i] = &Host{Addr: ep.Address, Additional: ep.AdditionalAddresses, Weight: w, Identity: ep.Identity, s: s,
				Priority: ep.Priority, Locality: ep.Locality, LocalityWeight: ep.LocalityWeight}
		}
	}
	for addr, s := range c.states {
		if states[addr] == nil {
			if a := s.detachLocked(); a != nil {
				gone = append(gone, a)
			}
		}
	}
	changed := !slices.Equal(hosts, c.hosts) || c.set.Load().all == nil
	c.hosts, c.states, c.order = hosts, states, order
	return changed, gone
}

// rebuildLocked stores a new host set from c.hosts and their health.
func (c *ClusterState) rebuildLocked() {
	all := c.hosts
	healthy := 0
	for _, h := range all {
		if !h.s.ejected.Load() {
			healthy++
		}
	}
	set := &hostSet{all: all, usable: all, hashed: c.cfg.policy == xds.LBPolicyRingHash || c.cfg.policy == xds.LBPolicyMaglev}
	if len(all) > 0 && needsLevels(c.cfg, all) {
		set.usable = nil
		set.p, set.panic = c.buildLevels(all)
		c.set.Store(set)
		return
	}
	if healthy < len(all) {
		set.panic = inPanic(healthy, len(all), c.cfg.panicThreshold, c.cfg.overprovisioning)
		if !set.panic {
			set.usable = make([]*Host, 0, healthy)
			for _, h := range all {
				if !h.s.ejected.Load() {
					set.usable = append(set.usable, h)
				}
			}
		}
	}
	if len(set.usable) > 0 {
		set.p = c.newPicker(c.cfg, set.usable, &c.rr)
	}
	c.set.Store(set)
}

// close stops the cluster's timer; its hosts are no longer ejected or
// returned, and their attachments are appended to gone for the caller to
// close.
func (c *ClusterState) close(gone []Attachment) []Attachment {
	c.mu.Lock()
	c.closed = true
	c.stopTimerLocked()
	c.stopDNSLocked()
	for _, s := range c.order {
		if a := s.detachLocked(); a != nil {
			gone = append(gone, a)
		}
	}
	c.mu.Unlock()
	return c.dsts.detach(c, gone)
}

// armLocked starts the interval timer.
func (c *ClusterState) armLocked(d time.Duration) {
	c.timerGen++
	gen := c.timerGen
	c.interval = d
	c.m.timers.Add(1)
	c.timer = c.m.clock.AfterFunc(d, func() { c.onInterval(gen) })
}

// stopTimerLocked stops the interval timer, if any. A callback already
// started sees its generation outdated and does nothing.
func (c *ClusterState) stopTimerLocked() {
	c.timerGen++
	if c.timer != nil && c.timer.Stop() {
		c.m.timers.Done()
	}
	c.timer = nil
}

// onInterval is the interval timer's callback: a sweep, then the next
// timer.
func (c *ClusterState) onInterval(gen uint64) {
	defer c.m.timers.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.timerGen || c.closed {
		return
	}
	c.timer = nil
	od := c.outlier.Load()
	if od == nil {
		return
	}
	if c.sweepLocked(od, c.m.clock.Now()) {
		c.rebuildLocked()
	}
	c.armLocked(od.Interval)
}
