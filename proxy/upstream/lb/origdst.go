package lb

import (
	"net/netip"
	"sync"
)

// maxOriginalDstHosts bounds the hosts an original-destination cluster
// remembers; past it, hosts without requests in flight are forgotten (as
// Envoy's cleanup_interval drops unused ORIGINAL_DST hosts).
const maxOriginalDstHosts = 4096

// origDstHosts are the hosts of a cluster whose host is each stream's own
// original destination (istiod's encap, for pod-addressed traffic): one
// Host per destination, made on first use, so that active request counts
// and outlier detection work as for endpoints.
type origDstHosts struct {
	mu sync.Mutex
	m  map[netip.AddrPort]*Host
}

// originalDstHost returns the host for dst; nil when dst is unknown.
func (c *ClusterState) originalDstHost(dst netip.AddrPort) *Host {
	if !dst.IsValid() {
		return nil
	}
	d := &c.dsts
	d.mu.Lock()
	defer d.mu.Unlock()
	if h := d.m[dst]; h != nil {
		return h
	}
	if d.m == nil {
		d.m = make(map[netip.AddrPort]*Host)
	}
	if len(d.m) >= maxOriginalDstHosts {
		for a, h := range d.m {
			if h.Active() == 0 {
				delete(d.m, a)
			}
		}
	}
	h := &Host{Addr: dst, Weight: 1, s: newHostState(c)}
	d.m[dst] = h
	return h
}
