package upstream

import (
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

// Pick is one endpoint chosen for one request, with the circuit breaker
// slots and the balancer's accounting it holds until Done. A value: it
// travels with the request without allocating. For protocols whose
// exchanges this package does not run itself (Dubbo's multiplexed
// connections, proxy/dubboconn).
type Pick struct{ p pick }

// Host returns the endpoint chosen.
func (p *Pick) Host() *lb.Host { return p.p.host }

// Done releases the slots and reports how the request went to outlier
// detection. It must be called exactly once; later calls do nothing.
func (p *Pick) Done(r lb.Result) { p.p.done(r) }

// Choose picks an endpoint of the named cluster of snap for one request,
// as the HTTP upstream does: a max_requests slot (and a max_retries slot
// for a retry), then the cluster's balancer. Errors are status errors of
// kinds NoCluster, Overflow and NoHealthyUpstream.
func (c *Clusters) Choose(snap *xds.Snapshot, cluster string, pc *lb.PickContext, retry bool) (*xds.Cluster, Pick, error) {
	cl, p, err := c.choose(snap, cluster, pc, retry, false)
	return cl, Pick{p: p}, err
}
