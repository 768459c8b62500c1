package lb

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/xds"
)

// Host is one endpoint of a cluster as one snapshot describes it. Its
// fields are read-only. The live state behind it (active requests, outlier
// detection) is shared with the Hosts of other snapshots that have the same
// cluster and address: compare Addr, not pointers, to recognize a host
// across reloads. Safe for concurrent use.
type Host struct {
	// Addr is the endpoint's ip:port.
	Addr netip.AddrPort
	// Additional are the endpoint's additional_addresses, tried after
	// Addr (happy eyeballs, package upstream); nil when it has none. The
	// host is still keyed by Addr alone, as in Envoy.
	Additional []netip.AddrPort
	// Weight is its load_balancing_weight, >= 1.
	Weight uint32
	// Identity is the expected peer identity; zero means any in the trust
	// domain.
	Identity spiffe.ID
	// Priority, Locality and LocalityWeight are those of the endpoint's
	// LocalityLbEndpoints (see priority.go).
	Priority       uint32
	Locality       xds.Locality
	LocalityWeight uint32

	s *hostState
}

// Begin counts an active request to h and returns the function that ends
// it. end must be called exactly once, with how the request went; it feeds
// outlier detection. end is shared by all requests to the host, so Begin
// does not allocate.
func (h *Host) Begin() (end func(Result)) {
	h.s.active.Add(1)
	h.s.counts.total.Add(1)
	return h.s.end
}

// Active returns the number of requests begun and not yet ended.
func (h *Host) Active() int64 { return h.s.active.Load() }

// HostStats are a host's request counters since the cluster first had it,
// as Envoy's per-host stats in /clusters: rq_total (begun), rq_success,
// rq_error (a 5xx, a reset, a connect failure or a timeout), rq_timeout,
// cx_connect_fail, and rq_active.
type HostStats struct {
	Total, Success, Error, Timeout, ConnectFail uint64
	Active                                      int64
}

// Stats returns h's counters.
func (h *Host) Stats() HostStats {
	c := &h.s.counts
	return HostStats{Total: c.total.Load(), Success: c.success.Load(), Error: c.err.Load(), Timeout: c.timeout.Load(),
		ConnectFail: c.connectFail.Load(), Active: h.s.active.Load()}
}

// Ejected reports whether outlier detection has ejected h.
func (h *Host) Ejected() bool { return h.s.ejected.Load() }

// String returns the address.
func (h *Host) String() string { return h.Addr.String() }

// hostState is the live state of one (cluster, address), shared by the
// Hosts of that address in successive snapshots. The atomics are written by
// request goroutines without a lock; ejected and the fields after it change
// only under the owning ClusterState's mu.
type hostState struct {
	c   *ClusterState // read-only
	end func(Result)  // finish bound to this state, made once; read-only

	active atomic.Int64
	counts hostCounts // for HostStats
	joined time.Time  // when the cluster first had the host (slow start); read-only

	// Outlier detection counters, written lock-free by end.
	consecutive5xx     atomic.Uint32
	consecutiveGateway atomic.Uint32
	consecutiveLocal   atomic.Uint32
	external, local    rateCounter // requests in the current interval

	ejected atomic.Bool // written under c.mu

	// attached is what another package hangs off the host (Host.Attach);
	// written under c.mu, read without a lock, nil once removed.
	attached atomic.Pointer[attachment]

	// Guarded by c.mu.
	removed        bool   // no longer in the cluster: nothing attaches any more
	backoff        uint32 // ejection time multiplier
	lastEjection   time.Time
	lastUneject    time.Time // zero: never un-ejected
	ejectionJitter time.Duration
}

// hostCounts are the counters behind HostStats.
type hostCounts struct {
	total, success, err, timeout, connectFail atomic.Uint64
}

// count adds one ended request.
func (c *hostCounts) count(r Result) {
	switch r {
	case Canceled:
	case Timeout:
		c.timeout.Add(1)
		c.err.Add(1)
	case ConnectFailed:
		c.connectFail.Add(1)
		c.err.Add(1)
	case Reset:
		c.err.Add(1)
	case Connected:
		c.success.Add(1)
	default:
		if code, ok := r.Code(); ok && code >= 500 {
			c.err.Add(1)
		} else {
			c.success.Add(1)
		}
	}
}

// rateCounter counts requests and successes over one outlier detection
// interval; the interval timer swaps both out.
type rateCounter struct {
	total, success atomic.Uint64
}

func newHostState(c *ClusterState) *hostState {
	s := &hostState{c: c, joined: c.m.clock.Now()}
	s.end = s.finish
	return s
}

// finish ends one request: the function Begin returns.
func (s *hostState) finish(r Result) {
	s.active.Add(-1)
	s.counts.count(r)
	if od := s.c.outlier.Load(); od != nil && r != Canceled {
		s.c.record(s, od, r)
	}
}
