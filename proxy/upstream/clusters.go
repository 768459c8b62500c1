package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

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
//
// Ownership: the per-endpoint state (HTTP/1.1 and HTTP/2 pools, holds on
// HBONE pool keys) hangs off LB's hosts (see endpoint) and goes when an
// Update drops the host; Clusters itself keeps no map of endpoints. It
// owns the goroutines that dial HTTP/2 connections, which Close cancels
// and waits for.
type Clusters struct {
	LB     *lb.Manager
	Dialer *Dialer

	mkEndpoint func() lb.Attachment // c.newEndpoint, made once: Attach does not allocate
	endpoints  atomic.Int64         // endpoints made and not yet closed

	ctx    context.Context // cancelled by Close: bounds the HTTP/2 dials
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and the Add of dials
	closed bool
	dials  sync.WaitGroup // HTTP/2 dial goroutines
}

// NewClusters returns Clusters over a new balancer manager.
func NewClusters(d *Dialer) *Clusters {
	c := &Clusters{LB: lb.NewManager(nil), Dialer: d}
	c.mkEndpoint = c.newEndpoint
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Update takes a new snapshot's clusters into the balancers; the
// endpoints of hosts it drops close (gracefully: what is in flight
// finishes).
func (c *Clusters) Update(snap *xds.Snapshot) { c.LB.Update(snap) }

// Close stops balancer timers, closes every endpoint's pools as an
// update that drops them would, and cancels and waits for the dials in
// flight.
func (c *Clusters) Close() {
	c.LB.Close()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.dials.Wait()
}

// Endpoints returns the number of endpoints that have state in c (pools,
// HBONE holds): hosts that served a request and are still in their
// cluster.
func (c *Clusters) Endpoints() int { return int(c.endpoints.Load()) }

// goDial runs dial on a goroutine that Close waits for; false after Close.
func (c *Clusters) goDial(dial func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.dials.Add(1)
	go func() {
		defer c.dials.Done()
		dial()
	}()
	return true
}

// maxAttachAttempts bounds the picks of a request whose picked host left
// its cluster between the pick and its use (a concurrent update): the
// next pick reads the updated host set.
const maxAttachAttempts = 4

// pickEndpoint picks a host of cs and its endpoint, picking again when a
// concurrent update has just removed the host picked. nil, nil: no host.
func (c *Clusters) pickEndpoint(cs *lb.ClusterState, pc *lb.PickContext) (*lb.Host, *endpoint) {
	for range maxAttachAttempts {
		h := cs.Pick(pc)
		if h == nil {
			return nil, nil
		}
		if ep := c.endpointOf(h); ep != nil {
			return h, ep
		}
	}
	return nil, nil
}

// pick is one chosen host with the breaker slots and accounting it holds;
// done releases them with how the request went. A value: it travels with
// the exchange, copied, without allocation.
type pick struct {
	sni          string // TLS origination's host for this request (auto_sni, auto_san_validation); "" without them
	host         *lb.Host
	ep           *endpoint // the host's pools and HBONE holds
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
	p.host, p.ep = c.pickEndpoint(cs, pc)
	if p.host == nil {
		p.done(lb.Canceled)
		return nil, p, status.New(status.NoHealthyUpstream, fmt.Errorf("cluster %q has no healthy endpoint", name))
	}
	p.end = p.host.Begin()
	return cl, p, nil
}

// tlsKey is the TLS key of the connections this pick may use: the
// cluster's, and the request's host when the cluster's TLS depends on it
// (auto_sni, auto_san_validation), so that a connection is not reused for
// another host, as Envoy's pools are keyed by the SNI. Compared, not
// concatenated: no allocation per request.
type tlsKey struct{ key, sni string }

func (p *pick) tlsKey(cl *xds.Cluster) tlsKey { return tlsKey{cl.TLSKey(), p.sni} }

// dialContext is ctx carrying the pick's host for dialTLS.
func (p *pick) dialContext(ctx context.Context) context.Context {
	if p.sni == "" {
		return ctx
	}
	return context.WithValue(ctx, sniKey{}, p.sni)
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
	h, ep := c.pickEndpoint(cs, &pc)
	if h == nil {
		release()
		return nil, netip.AddrPort{}, nil, status.New(status.NoHealthyUpstream, fmt.Errorf("cluster %q has no healthy endpoint", name))
	}
	end := h.Begin()
	conn, err = c.Dialer.dial(ctx, cl, h, ep, proxyHeader(cl.ProxyProtocol, down))
	if err != nil {
		end(lb.ConnectFailed)
		release()
		return nil, h.Addr, nil, err
	}
	return conn, h.Addr, func() { end(lb.Connected); release() }, nil
}
