package dubboconn

import (
	"sync/atomic"

	"github.com/gowaypoint/waypoint/xds"
)

// Source finds the DubboProxy a connection serves under the current
// config: the filter chain of its listener that matches its destination,
// looked up again whenever the config changes, so that new calls take a
// new config while calls in flight finish on theirs. Safe for concurrent
// use (calls look it up from their goroutines).
type Source struct {
	store    *xds.Store
	listener string
	match    xds.MatchInput
	cached   atomic.Pointer[binding]
}

// binding is one snapshot's view of a connection. Read-only.
type binding struct {
	snap  *xds.Snapshot
	dubbo *xds.DubboProxy // nil: the chain is gone or no longer Dubbo
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
		}
	}
	s.cached.CompareAndSwap(b, nb)
	return nb
}
