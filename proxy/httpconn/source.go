package httpconn

import (
	"sync/atomic"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/xds"
)

// Source finds the HttpConnectionManager a connection serves under the
// current config: the filter chain of its listener that matches its
// destination, looked up again whenever the config changes, so that new
// requests on a kept-alive connection take a new config while requests in
// flight finish on theirs. Safe for concurrent use (HTTP/2 streams call it
// from their goroutines).
type Source struct {
	store    *xds.Store
	listener string
	match    xds.MatchInput
	clusters Upstreams
	cached   atomic.Pointer[binding]
}

// Upstreams makes the filters.Upstream of a snapshot.
type Upstreams interface {
	HTTP(snap *xds.Snapshot) filters.Upstream
}

// binding is one snapshot's view of a connection. Read-only.
type binding struct {
	snap *xds.Snapshot
	hcm  *xds.HTTPConnectionManager // nil: the connection's chain is gone or no longer HTTP
	up   filters.Upstream
}

// NewSource returns the source of a connection to listener (by name) with
// destination and source addresses in match. first is the connection
// manager already matched at accept, on snap.
func NewSource(store *xds.Store, listener string, match xds.MatchInput, up Upstreams, snap *xds.Snapshot, first *xds.HTTPConnectionManager) *Source {
	s := &Source{store: store, listener: listener, match: match, clusters: up}
	s.cached.Store(&binding{snap: snap, hcm: first, up: up.HTTP(snap)})
	return s
}

// current returns the binding for the config now in force.
func (s *Source) current() *binding {
	b := s.cached.Load()
	snap := s.store.Load()
	if snap == nil || snap == b.snap {
		return b
	}
	nb := &binding{snap: snap, up: s.clusters.HTTP(snap)}
	if l := snap.Listener(s.listener); l != nil {
		if fc := l.Match(s.match); fc != nil {
			nb.hcm = fc.HTTP
		}
	}
	s.cached.CompareAndSwap(b, nb)
	return nb
}
