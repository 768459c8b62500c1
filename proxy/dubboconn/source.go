package dubboconn

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

// Source finds the DubboProxy a connection serves under the current
// config: the filter chain of its listener that matches its destination
// (its dubbo_proxy, or for a tcp_proxy chain the DubboProxy made up for
// it, xds.TCPProxy.Dubbo), looked up again whenever the config changes, so that new calls take a
// new config while calls in flight finish on theirs. Safe for concurrent
// use (calls look it up from their goroutines).
type Source struct {
	store    *xds.Store
	listener string
	match    xds.MatchInput
	cached   atomic.Pointer[binding]
}

// binding is one snapshot's view of a connection. Read-only but for
// prefer, a cache safe for concurrent use.
type binding struct {
	snap  *xds.Snapshot
	dubbo *xds.DubboProxy // nil: the chain is gone or no longer Dubbo

	// prefer caches, per (cluster, version, group) a call named, the
	// lb.PickContext.Prefer of the cluster's endpoints that carry them
	// (preferFunc; nil when none does).
	prefer sync.Map // preferKey -> preferFunc
	// last is the entry asked for last, found without allocating.
	last atomic.Pointer[preferEntry]
}

type preferEntry struct {
	k preferKey
	f func(*lb.Host) bool
}

// preferForBytes is preferFor for the version and group as the call's
// header holds them; a run of calls naming the same ones allocates
// nothing.
func (b *binding) preferForBytes(cluster string, version, group []byte) func(*lb.Host) bool {
	if e := b.last.Load(); e != nil && e.k.cluster == cluster && e.k.version == string(version) && e.k.group == string(group) {
		return e.f
	}
	e := &preferEntry{k: preferKey{cluster, string(version), string(group)}}
	e.f = b.preferFor(e.k.cluster, e.k.version, e.k.group)
	b.last.Store(e)
	return e.f
}

type preferKey struct{ cluster, version, group string }

// preferFunc is a cached Prefer, nil for none.
type preferFunc struct{ f func(*lb.Host) bool }

// maxPreferEntries bounds a binding's prefer cache: versions and groups
// come from the consumer, and a binding lives as long as its snapshot.
const maxPreferEntries = 64

// preferFor returns the Prefer of a call to cluster naming version and
// group (either may be empty, not both): the endpoints whose Dubbo labels
// (xds.Endpoint.DubboLabels) equal the ones named; nil when none has them
// (the call then goes to any endpoint, as Dubbo's registry-based routing
// falls back to all providers) or the cluster's endpoints have no
// addresses (DNS).
func (b *binding) preferFor(cluster, version, group string) func(*lb.Host) bool {
	k := preferKey{cluster, version, group}
	if v, ok := b.prefer.Load(k); ok {
		return v.(preferFunc).f
	}
	var addrs []netip.AddrPort
	if cl := b.snap.Cluster(cluster); cl != nil && cl.DNS == nil {
		for i := range cl.Endpoints {
			ep := &cl.Endpoints[i]
			v, g := ep.DubboLabels()
			if (version == "" || v == version) && (group == "" || g == group) {
				addrs = append(addrs, ep.Address)
			}
		}
	}
	var pf preferFunc
	if len(addrs) > 0 {
		pf.f = func(h *lb.Host) bool { return slices.Contains(addrs, h.Addr) }
	}
	n := 0
	b.prefer.Range(func(any, any) bool { n++; return n < maxPreferEntries })
	if n < maxPreferEntries {
		b.prefer.Store(k, pf)
	}
	return pf.f
}

// NewSource returns the source of a connection to listener (by name) with
// destination and source addresses in match; first is the DubboProxy
// already matched at accept, on snap.
func NewSource(store *xds.Store, listener string, match xds.MatchInput, snap *xds.Snapshot, first *xds.DubboProxy) *Source {
	s := &Source{store: store, listener: listener, match: match}
	s.cached.Store(&binding{snap: snap, dubbo: first})
	return s
}

// current returns the binding for the config now in force.
func (s *Source) current() *binding {
	b := s.cached.Load()
	snap := s.store.Load()
	if snap == nil || snap == b.snap {
		return b
	}
	nb := &binding{snap: snap}
	if l := snap.Listener(s.listener); l != nil {
		if fc := l.Match(s.match); fc != nil {
			nb.dubbo = fc.Dubbo
			if nb.dubbo == nil && fc.TCPProxy != nil {
				nb.dubbo = fc.TCPProxy.Dubbo
			}
		}
	}
	s.cached.CompareAndSwap(b, nb)
	return nb
}
