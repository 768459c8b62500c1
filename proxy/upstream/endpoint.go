package upstream

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/gowaypoint/waypoint/proxy/hbone"
	"github.com/gowaypoint/waypoint/proxy/upstream/lb"
)

// endpoint is what this package keeps per host of a cluster, as Envoy
// keeps connection pools per host: the HTTP/1.1 and HTTP/2 pools to the
// host and the holds on the HBONE pool keys its transports go through.
//
// Ownership: the balancer's host owns it. It is an lb.Attachment, made on
// the first request to the host (Clusters.endpointOf, through
// lb.Host.Attach) and closed by the lb package, once, when the host leaves
// its cluster (an update without its address or its cluster,
// Manager.Close, eviction of an original-destination host). Nothing else
// refers to it, so nothing of an endpoint that left stays behind: the pools
// go with the host, and the HBONE key goes with the last endpoint of any
// cluster that held it (the keys are counted, since several clusters, and
// several priorities, can have the same pod).
//
// Closing is graceful: idle connections close, HTTP/2 connections with
// streams drain, HTTP/1.1 exchanges in flight finish and close their
// connection, pending requests fail (and may be retried on another host);
// no new connection opens. Safe for concurrent use.
type endpoint struct {
	c  *Clusters // read-only
	h1 h1Pool
	h2 h2Pool

	mu     sync.Mutex // guards holds and closed
	holds  []hboneHold
	closed bool
}

// hboneHold is one HBONE pool key an endpoint holds: usually one, more if
// an update changed the identity expected of the host or the cluster's
// HBONE port while the host stayed.
type hboneHold struct {
	addr    netip.AddrPort
	peer    string
	release func()
}

// errEndpointGone fails what would open a connection to a host that has
// left its cluster: the caller may pick another.
// (Dial makes it a ConnectFailure.)
var errEndpointGone = errors.New("endpoint left its cluster")

func (c *Clusters) newEndpoint() lb.Attachment {
	c.endpoints.Add(1)
	return &endpoint{c: c}
}

// endpointOf returns the endpoint of h, nil when h has left its cluster.
// One atomic load once the endpoint exists.
func (c *Clusters) endpointOf(h *lb.Host) *endpoint {
	a := h.Attach(c.mkEndpoint)
	if a == nil {
		return nil
	}
	return a.(*endpoint)
}

// hold makes e a holder of the HBONE pool key of d, once per key.
func (e *endpoint) hold(pool *hbone.Pool, d hbone.Dest) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errEndpointGone
	}
	for _, h := range e.holds {
		if h.addr == d.Addr && h.peer == d.PeerKey {
			return nil
		}
	}
	e.holds = append(e.holds, hboneHold{addr: d.Addr, peer: d.PeerKey, release: pool.Hold(d)})
	return nil
}

// Close implements lb.Attachment: the pools close (gracefully, see the
// type's comment), then the HBONE keys are released.
func (e *endpoint) Close() {
	e.h1.Close()
	e.h2.Close()
	e.mu.Lock()
	holds := e.holds
	e.holds, e.closed = nil, true
	e.mu.Unlock()
	for _, h := range holds {
		h.release()
	}
	e.c.endpoints.Add(-1)
}
