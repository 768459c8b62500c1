package lb

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// Resolver resolves the host names of DNS clusters (package
// proxy/upstream/dns's Client). Lookup returns name's addresses of
// family and their smallest TTL; a name without addresses is no error.
type Resolver interface {
	Lookup(ctx context.Context, name string, family xds.DNSLookupFamily) ([]netip.Addr, time.Duration, error)
}

// SetResolver sets the resolver of DNS clusters. It must be called before
// the first Update; without one, DNS clusters have no hosts.
func (m *Manager) SetResolver(r Resolver) { m.resolver = r }

// dnsRun is one DNS cluster's resolution: a goroutine the Manager owns
// (dnsRuns), which resolves the cluster's names, makes their addresses its
// hosts, and resolves again after the refresh rate, the TTL or the
// failure back-off, as Envoy's STRICT_DNS and LOGICAL_DNS clusters do.
// It runs for as long as the cluster has the same DNS config and names:
// a snapshot that changes them restarts it (the hosts found so far serve
// until the new run's first answer, as Envoy's new cluster warms), and
// removing the cluster stops it.
type dnsRun struct {
	cfg    xds.DNSConfig // read-only
	cancel context.CancelFunc

	targets []xds.Endpoint // the names to resolve; guarded by the ClusterState's mu
}

// resolveLocked starts, keeps or restarts the resolution of cl, a DNS
// cluster.
func (c *ClusterState) resolveLocked(cl *xds.Cluster) {
	if r := c.dns; r != nil && r.cfg == *cl.DNS && slices.EqualFunc(r.targets, cl.Endpoints, sameTarget) {
		r.targets = cl.Endpoints // the same names; metadata may be new
		return
	}
	c.stopDNSLocked()
	if c.m.resolver == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &dnsRun{cfg: *cl.DNS, cancel: cancel, targets: cl.Endpoints}
	c.dns = r
	c.m.dnsRuns.Add(1)
	go c.runDNS(ctx, r)
}

// sameTarget reports whether two endpoints resolve to the same hosts.
func sameTarget(a, b xds.Endpoint) bool {
	return a.Address == b.Address && a.Hostname == b.Hostname && a.Weight == b.Weight && a.Identity == b.Identity
}

// stopDNSLocked stops the resolution, if any; its goroutine ends soon
// after (Manager.Close waits for it), applying nothing more.
func (c *ClusterState) stopDNSLocked() {
	if c.dns != nil {
		c.dns.cancel()
		c.dns = nil
	}
}

// runDNS is r's goroutine.
func (c *ClusterState) runDNS(ctx context.Context, r *dnsRun) {
	defer c.m.dnsRuns.Done()
	var found [][]xds.Endpoint // per target: its hosts of the last success
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		c.mu.Lock()
		targets := r.targets
		c.mu.Unlock()
		if len(found) != len(targets) {
			found = make([][]xds.Endpoint, len(targets))
		}
		ttl, failed := c.resolveTargets(ctx, r, targets, found)
		if ctx.Err() != nil {
			return
		}
		c.applyDNS(r, slices.Concat(found...))
		var wait time.Duration
		if failed {
			failures++
			wait = failureWait(r.cfg, failures)
		} else {
			failures = 0
			wait = r.cfg.RefreshRate
			if r.cfg.RespectTTL && ttl > 0 {
				wait = ttl
			}
		}
		if r.cfg.Jitter > 0 {
			wait += rand.N(r.cfg.Jitter)
		}
		timer.Reset(wait)
	}
}

// resolveTargets resolves each target into found[i] (an IP address is its
// own host); a target whose lookup fails keeps its hosts of the last
// success. It returns the smallest TTL of the answers and whether a
// lookup failed.
func (c *ClusterState) resolveTargets(ctx context.Context, r *dnsRun, targets []xds.Endpoint, found [][]xds.Endpoint) (ttl time.Duration, failed bool) {
	for i, t := range targets {
		if t.Hostname == "" {
			found[i] = []xds.Endpoint{t}
			continue
		}
		addrs, d, err := c.m.resolver.Lookup(ctx, t.Hostname, r.cfg.Family)
		if err != nil {
			failed = true
			continue
		}
		if d > 0 && (ttl == 0 || d < ttl) {
			ttl = d
		}
		if r.cfg.Logical && len(addrs) > 1 {
			addrs = addrs[:1] // LOGICAL_DNS: the name's first address of the moment
		}
		eps := make([]xds.Endpoint, len(addrs))
		for j, a := range addrs {
			ep := t
			ep.Hostname = ""
			ep.Address = netip.AddrPortFrom(a, t.Address.Port())
			eps[j] = ep
		}
		found[i] = eps
	}
	return ttl, failed
}

// failureWait is the wait after the n-th failure in a row: a jittered
// exponential back-off from dns_failure_refresh_rate's base to its max,
// or the refresh rate when it has none.
func failureWait(cfg xds.DNSConfig, n int) time.Duration {
	if cfg.FailureBase == 0 {
		return cfg.RefreshRate
	}
	d := cfg.FailureMax
	if n < 32 && cfg.FailureBase<<(n-1) < cfg.FailureMax {
		d = cfg.FailureBase << (n - 1)
	}
	return d/2 + rand.N(d/2+1)
}

// applyDNS makes eps the hosts of the cluster, unless r has been stopped.
func (c *ClusterState) applyDNS(r *dnsRun, eps []xds.Endpoint) {
	c.mu.Lock()
	if c.closed || c.dns != r {
		c.mu.Unlock()
		return
	}
	c.dnsEndpoints = eps
	changed, gone := c.setHostsLocked(eps, nil)
	if changed {
		c.rebuildLocked()
	}
	c.mu.Unlock()
	closeAttachments(gone)
}
