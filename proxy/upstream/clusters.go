package upstream

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gowaypoint/waypoint/filters"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/proxy/relay"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
	"github.com/gowaypoint/waypoint/xds"
)

// Clusters reaches the clusters of the config: balancing and health from
// LB, transports from Dialer, and the HTTP connection pools. It outlives
// config snapshots; Update must see every snapshot before streams use it.
// Safe for concurrent use.
type Clusters struct {
	LB     *lb.Manager
	Dialer *Dialer
	http   httpPools
}

// NewClusters returns Clusters over a new balancer manager.
func NewClusters(d *Dialer) *Clusters {
	return &Clusters{LB: lb.NewManager(nil), Dialer: d}
}

// Update takes a new snapshot's clusters into the balancers.
func (c *Clusters) Update(snap *xds.Snapshot) { c.LB.Update(snap) }

// Close stops balancer timers and closes pooled HTTP connections.
func (c *Clusters) Close() {
	c.LB.Close()
	c.http.closeAll()
}

// pick is one chosen host with the breaker slots and accounting it holds;
// done releases them with how the request went. A value: it travels with
// the exchange, copied, without allocation.
type pick struct {
	host         *lb.Host
	end          func(lb.Result)
	releaseReq   func()
	releaseRetry func()
}

func (p *pick) done(r lb.Result) {
	if p.end != nil {
		p.end(r)
		p.end = nil
	}
	if p.releaseReq != nil {
		p.releaseReq()
		p.releaseReq = nil
	}
	if p.releaseRetry != nil {
		p.releaseRetry()
		p.releaseRetry = nil
	}
}

// choose takes breaker slots and picks a host of the named cluster. With
// lateRequest, the max_requests slot is left for the caller to take once
// the request has a connection (pick.takeRequest), as Envoy's pools do.
func (c *Clusters) choose(snap *xds.Snapshot, name string, pc *lb.PickContext, retry, lateRequest bool) (*xds.Cluster, pick, error) {
	var p pick
	cl := snap.Cluster(name)
	cs := c.LB.Cluster(name)
	if cl == nil || cs == nil {
		return nil, p, status.New(status.NoCluster, fmt.Errorf("cluster %q is not configured", name))
	}
	if cl.Refusal != "" {
		return nil, p, status.New(status.NoCluster, fmt.Errorf("cluster %q cannot be used: %s", name, cl.Refusal))
	}
	br := cs.Breakers()
	if !lateRequest {
		rel, ok := br.TryRequest()
		if !ok {
			return nil, p, status.New(status.Overflow, fmt.Errorf("cluster %q: max_requests reached", name))
		}
		p.releaseReq = rel
	}
	if retry {
		rel, ok := br.TryRetry()
		if !ok {
			p.done(lb.Canceled)
			return nil, p, status.New(status.Overflow, fmt.Errorf("cluster %q: max_retries reached", name))
		}
		p.releaseRetry = rel
	}
	p.host = cs.Pick(pc)
	if p.host == nil {
		p.done(lb.Canceled)
		return nil, p, status.New(status.NoHealthyUpstream, fmt.Errorf("cluster %q has no healthy endpoint", name))
	}
	p.end = p.host.Begin()
	return cl, p, nil
}

// takeRequest takes the max_requests slot of a pick made with lateRequest.
func (p *pick) takeRequest(c *Clusters, cl *xds.Cluster) error {
	cs := c.LB.Cluster(cl.Name)
	if cs == nil || p.releaseReq != nil {
		return nil
	}
	rel, ok := cs.Breakers().TryRequest()
	if !ok {
		return status.New(status.Overflow, fmt.Errorf("cluster %q: max_requests reached", cl.Name))
	}
	p.releaseReq = rel
	return nil
}

// ConnectTCP picks an endpoint of the named cluster and opens a byte stream
// to it for a tcp_proxy, holding a max_connections slot for the stream's
// life. done must be called once the stream ends.
func (c *Clusters) ConnectTCP(ctx context.Context, snap *xds.Snapshot, name string) (conn relay.Conn, host netip.AddrPort, done func(), err error) {
	return c.ConnectTCPTo(ctx, snap, name, lb.PickContext{}, nil)
}

// ConnectTCPTo is ConnectTCP with what the pick may depend on: the
// stream's original destination (pc.Destination, the host of a cluster
// whose host is the destination: xds.Cluster.OriginalDestination, istiod's
// encap) and the tcp_proxy's hash (pc.Hash, for ring hash and Maglev);
// down is where the stream comes from, for a cluster whose connections
// start with a PROXY protocol header (nil: unknown).
func (c *Clusters) ConnectTCPTo(ctx context.Context, snap *xds.Snapshot, name string, pc lb.PickContext, down *filters.Downstream) (conn relay.Conn, host netip.AddrPort, done func(), err error) {
	cl := snap.Cluster(name)
	cs := c.LB.Cluster(name)
	if cl == nil || cs == nil {
		return nil, netip.AddrPort{}, nil, status.New(status.NoCluster, fmt.Errorf("cluster %q is not configured", name))
	}
	if cl.Refusal != "" {
		return nil, netip.AddrPort{}, nil, status.New(status.NoCluster, fmt.Errorf("cluster %q cannot be used: %s", name, cl.Refusal))
	}
	release, ok := cs.Breakers().TryConnection()
	if !ok {
		return nil, netip.AddrPort{}, nil, status.New(status.Overflow, fmt.Errorf("cluster %q: max_connections reached", name))
	}
	h := cs.Pick(&pc)
	if h == nil {
		release()
		return nil, netip.AddrPort{}, nil, status.New(status.NoHealthyUpstream, fmt.Errorf("cluster %q has no healthy endpoint", name))
	}
	end := h.Begin()
	conn, err = c.Dialer.DialWith(ctx, cl, h.Addr, h.Identity, proxyHeader(cl.ProxyProtocol, down))
	if err != nil {
		end(lb.ConnectFailed)
		release()
		return nil, h.Addr, nil, err
	}
	return conn, h.Addr, func() { end(lb.Connected); release() }, nil
}
