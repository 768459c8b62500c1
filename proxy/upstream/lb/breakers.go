package lb

import (
	"sync/atomic"

	"github.com/gowaypoint/waypoint/xds"
)

// Breakers are a cluster's circuit breakers: counts of connections,
// pending requests, requests and retries in flight, each refused beyond
// its threshold, as Envoy's DEFAULT priority resources. A ClusterState's
// Breakers live as long as the cluster keeps its name across snapshots:
// thresholds change in place and the counts carry over. Safe for
// concurrent use; nothing allocates.
type Breakers struct {
	res [numResources]resource
	// budget, when set, bounds retries instead of max_retries.
	budget atomic.Pointer[xds.RetryBudget]
}

// The resources, in xds.Thresholds order.
const (
	resConnections = iota
	resPending
	resRequests
	resRetries
	numResources
)

type resource struct {
	max     atomic.Uint32
	n       atomic.Int64
	release func() // made once: releasing does not allocate
}

// NewBreakers returns breakers with thresholds t and nothing in flight.
func NewBreakers(t xds.Thresholds) *Breakers {
	b := &Breakers{}
	for i := range b.res {
		r := &b.res[i]
		r.release = func() { r.n.Add(-1) }
	}
	b.SetThresholds(t)
	return b
}

// SetThresholds changes the thresholds. Counts are kept: if more is in
// flight than a new threshold allows, new attempts are refused until
// enough is released.
func (b *Breakers) SetThresholds(t xds.Thresholds) {
	b.res[resConnections].max.Store(t.MaxConnections)
	b.res[resPending].max.Store(t.MaxPendingRequests)
	b.res[resRequests].max.Store(t.MaxRequests)
	b.res[resRetries].max.Store(t.MaxRetries)
	b.budget.Store(t.RetryBudget)
}

// Thresholds returns the current thresholds.
func (b *Breakers) Thresholds() xds.Thresholds {
	return xds.Thresholds{
		MaxConnections:     b.res[resConnections].max.Load(),
		MaxPendingRequests: b.res[resPending].max.Load(),
		MaxRequests:        b.res[resRequests].max.Load(),
		MaxRetries:         b.res[resRetries].max.Load(),
		RetryBudget:        b.budget.Load(),
	}
}

// TryConnection counts a new upstream connection, or reports false when
// max_connections are open. On success, release must be called exactly
// once, when the connection closes.
func (b *Breakers) TryConnection() (release func(), ok bool) { return b.try(resConnections) }

// AddConnection counts a new upstream connection whatever max_connections
// says: Envoy opens one for a host whose pool has none even at the limit,
// so that its pending requests are not left with no way to be served.
// release must be called exactly once, when the connection closes.
func (b *Breakers) AddConnection() (release func()) {
	r := &b.res[resConnections]
	r.n.Add(1)
	return r.release
}

// TryPending counts a request waiting for a connection or stream, or
// reports false at max_pending_requests. release is called once the
// request has one (or gives up).
func (b *Breakers) TryPending() (release func(), ok bool) { return b.try(resPending) }

// TryRequest counts a request in flight to the cluster, or reports false at
// max_requests. release is called when the request ends.
func (b *Breakers) TryRequest() (release func(), ok bool) { return b.try(resRequests) }

// TryRetry counts a retry in flight, or reports false at max_retries, or
// with a retry budget at its share of the requests in flight (active and
// pending) or its minimum concurrency, whichever is larger, as Envoy's.
// release is called when the retry ends.
func (b *Breakers) TryRetry() (release func(), ok bool) {
	rb := b.budget.Load()
	if rb == nil {
		return b.try(resRetries)
	}
	active := b.res[resRequests].n.Load() + b.res[resPending].n.Load()
	limit := max(int64(rb.Percent/100*float64(active)), int64(rb.MinConcurrency))
	r := &b.res[resRetries]
	if r.n.Add(1) > limit {
		r.n.Add(-1)
		return nil, false
	}
	return r.release, true
}

// InFlight returns the current counts, in xds.Thresholds order.
func (b *Breakers) InFlight() (connections, pending, requests, retries int64) {
	return b.res[resConnections].n.Load(), b.res[resPending].n.Load(),
		b.res[resRequests].n.Load(), b.res[resRetries].n.Load()
}

func (b *Breakers) try(i int) (func(), bool) {
	r := &b.res[i]
	if r.n.Add(1) > int64(r.max.Load()) {
		r.n.Add(-1)
		return nil, false
	}
	return r.release, true
}
