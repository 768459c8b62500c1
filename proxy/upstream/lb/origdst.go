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
	if h := d.m[dst]; h != nil {
		d.mu.Unlock()
		return h
	}
	if d.m == nil {
		d.m = make(map[netip.AddrPort]*Host)
	}
	var evicted []*Host
	if len(d.m) >= maxOriginalDstHosts {
		for a, h := range d.m {
			if h.Active() == 0 {
				delete(d.m, a)
				evicted = append(evicted, h)
			}
		}
	}
	h := &Host{Addr: dst, Weight: 1, s: newHostState(c)}
	d.m[dst] = h
	d.mu.Unlock()
	if evicted != nil {
		closeAttachments(c.detachHosts(evicted, nil))
	}
	return h
}

// detach forgets every original-destination host and appends their
// attachments to gone.
func (d *origDstHosts) detach(c *ClusterState, gone []Attachment) []Attachment {
	d.mu.Lock()
	hosts := make([]*Host, 0, len(d.m))
	for _, h := range d.m {
		hosts = append(hosts, h)
	}
	d.m = nil
	d.mu.Unlock()
	return c.detachHosts(hosts, gone)
}

// detachHosts marks the hosts removed and appends their attachments to
// gone. It takes c.mu (never while d.mu is held).
func (c *ClusterState) detachHosts(hosts []*Host, gone []Attachment) []Attachment {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hosts {
		if a := h.s.detachLocked(); a != nil {
			gone = append(gone, a)
		}
	}
	return gone
}
