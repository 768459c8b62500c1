package lb

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/proxy/upstream/dns"
	"github.com/gowaypoint/waypoint/proxy/upstream/dns/dnstest"
	"github.com/gowaypoint/waypoint/xds"
)

// fakeResolver answers from a table the test changes.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	ttl     time.Duration
	err     error
	calls   map[string]int
	family  xds.DNSLookupFamily
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][]netip.Addr{}, calls: map[string]int{}}
}

func (r *fakeResolver) set(name string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[name] = nil
	for _, a := range addrs {
		r.answers[name] = append(r.answers[name], netip.MustParseAddr(a))
	}
}

func (r *fakeResolver) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *fakeResolver) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[name]
}

func (r *fakeResolver) Lookup(ctx context.Context, name string, family xds.DNSLookupFamily) ([]netip.Addr, time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[name]++
	r.family = family
	if r.err != nil {
		return nil, 0, r.err
	}
	return slices.Clone(r.answers[name]), r.ttl, nil
}

// dnsClusterOf is a DNS cluster resolving names on port 80.
func dnsClusterOf(cfg xds.DNSConfig, names ...string) *xds.Cluster {
	cl := &xds.Cluster{Name: "dns", DNS: &cfg}
	for i, n := range names {
		ep := xds.Endpoint{Weight: uint32(i + 1)}
		if ip, err := netip.ParseAddr(n); err == nil {
			ep.Address = netip.AddrPortFrom(ip, 80)
		} else {
			ep.Address, ep.Hostname = netip.AddrPortFrom(netip.Addr{}, 80), n
		}
		cl.Endpoints = append(cl.Endpoints, ep)
	}
	return cl
}

// hostsOf is the cluster's hosts as "ip:port/weight".
func hostsOf(c *ClusterState) []string {
	var out []string
	for _, h := range c.Hosts() {
		out = append(out, h.Addr.String()+"/"+string(rune('0'+h.Weight)))
	}
	return out
}

// waitHosts waits until the cluster's hosts are want.
func waitHosts(t *testing.T, c *ClusterState, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(hostsOf(c), want) {
		if time.Now().After(deadline) {
			t.Fatalf("hosts %v, want %v", hostsOf(c), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRuns waits until every DNS goroutine of m has ended.
func waitRuns(t *testing.T, m *Manager) {
	t.Helper()
	done := make(chan struct{})
	go func() { m.dnsRuns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a DNS goroutine is still running")
	}
}

func TestStrictDNS(t *testing.T) {
	r := newFakeResolver()
	r.set("a.example", "127.0.0.1", "127.0.0.2")
	r.set("b.example", "127.0.0.3")
	m := newTestManager(t, nil, 1)
	m.SetResolver(r)
	cfg := xds.DNSConfig{Family: xds.DNSV4Only, RefreshRate: 10 * time.Millisecond}
	m.Update(snapshot(dnsClusterOf(cfg, "a.example", "127.0.0.9", "b.example")))
	c := m.Cluster("dns")
	waitHosts(t, c, "127.0.0.1:80/1", "127.0.0.2:80/1", "127.0.0.9:80/2", "127.0.0.3:80/3")
	r.mu.Lock()
	if r.family != xds.DNSV4Only {
		t.Errorf("family %v", r.family)
	}
	r.mu.Unlock()
	kept := c.Hosts()[0]

	// The answer changes: the hosts follow at the next refresh; a host that
	// stays keeps its state.
	r.set("a.example", "127.0.0.1", "127.0.0.4")
	r.set("b.example")
	waitHosts(t, c, "127.0.0.1:80/1", "127.0.0.4:80/1", "127.0.0.9:80/2")
	if c.Hosts()[0] != kept {
		t.Error("a host that stayed is a new *Host")
	}

	// A failed resolution keeps the hosts.
	r.fail(errors.New("SERVFAIL"))
	n := r.count("a.example")
	for r.count("a.example") < n+3 {
		time.Sleep(5 * time.Millisecond)
	}
	waitHosts(t, c, "127.0.0.1:80/1", "127.0.0.4:80/1", "127.0.0.9:80/2")
	r.fail(nil)

	// The cluster removed: its goroutine ends, and nothing more is asked.
	m.Update(snapshot())
	waitRuns(t, m)
	n = r.count("a.example")
	time.Sleep(30 * time.Millisecond)
	if r.count("a.example") != n {
		t.Error("still resolving after the cluster was removed")
	}
}

func TestLogicalDNS(t *testing.T) {
	r := newFakeResolver()
	r.set("a.example", "127.0.0.1", "127.0.0.2")
	m := newTestManager(t, nil, 1)
	m.SetResolver(r)
	m.Update(snapshot(dnsClusterOf(xds.DNSConfig{Logical: true, RefreshRate: 10 * time.Millisecond}, "a.example")))
	c := m.Cluster("dns")
	waitHosts(t, c, "127.0.0.1:80/1")
	r.set("a.example", "127.0.0.2", "127.0.0.1")
	waitHosts(t, c, "127.0.0.2:80/1")
}

func TestDNSRunAcrossUpdates(t *testing.T) {
	r := newFakeResolver()
	r.set("a.example", "127.0.0.1")
	r.set("b.example", "127.0.0.2")
	m := newTestManager(t, nil, 1)
	m.SetResolver(r)
	cfg := xds.DNSConfig{RefreshRate: time.Hour}
	m.Update(snapshot(dnsClusterOf(cfg, "a.example")))
	c := m.Cluster("dns")
	waitHosts(t, c, "127.0.0.1:80/1")
	run := c.dns

	// The same config and names: the same run, no new lookup, the same hosts.
	m.Update(snapshot(dnsClusterOf(cfg, "a.example")))
	if c.dns != run || r.count("a.example") != 1 {
		t.Errorf("an unchanged DNS cluster restarted its resolution (%d lookups)", r.count("a.example"))
	}
	waitHosts(t, c, "127.0.0.1:80/1")

	// Other names: a new run; the old hosts serve until it answers.
	m.Update(snapshot(dnsClusterOf(cfg, "b.example")))
	if c.dns == run {
		t.Error("new names kept the old run")
	}
	waitHosts(t, c, "127.0.0.2:80/1")

	// No longer a DNS cluster: the run stops and the config's endpoints serve.
	m.Update(snapshot(&xds.Cluster{Name: "dns", Endpoints: endpoints(1)}))
	waitRuns(t, m)
	waitHosts(t, c, addr(0).String()+"/1")
}

func TestDNSRefreshWaits(t *testing.T) {
	base := xds.DNSConfig{RefreshRate: 5 * time.Second}
	if d := failureWait(base, 3); d != 5*time.Second {
		t.Errorf("no failure rate: %v", d)
	}
	fr := xds.DNSConfig{RefreshRate: time.Minute, FailureBase: time.Second, FailureMax: 4 * time.Second}
	for n, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: 4 * time.Second, 100: 4 * time.Second} {
		if d := failureWait(fr, n); d < max/2 || d > max {
			t.Errorf("failure %d: %v, want %v..%v", n, d, max/2, max)
		}
	}

	// respect_dns_ttl: the TTL, not the refresh rate.
	r := newFakeResolver()
	r.set("a.example", "127.0.0.1")
	r.ttl = 10 * time.Millisecond
	m := newTestManager(t, nil, 1)
	m.SetResolver(r)
	m.Update(snapshot(dnsClusterOf(xds.DNSConfig{RefreshRate: time.Hour, RespectTTL: true}, "a.example")))
	deadline := time.Now().Add(5 * time.Second)
	for r.count("a.example") < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the TTL did not drive the refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDNSWithoutResolverHasNoHosts(t *testing.T) {
	m := newTestManager(t, nil, 1)
	m.Update(snapshot(dnsClusterOf(xds.DNSConfig{RefreshRate: time.Second}, "a.example")))
	if h := m.Cluster("dns").Pick(nil); h != nil {
		t.Errorf("picked %v", h)
	}
}

// BenchmarkPickDNS picks from a STRICT_DNS cluster whose name resolved to 10
// addresses: its hosts are a host set like any other, so a pick costs what
// BenchmarkPick/RoundRobin/10 does, and a cluster without DNS pays nothing
// for it.
func BenchmarkPickDNS(b *testing.B) {
	r := newFakeResolver()
	var addrs []string
	for i := range 10 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{127, 0, 23, byte(i + 1)}).String())
	}
	r.set("a.example", addrs...)
	m := NewManager(nil)
	defer m.Close()
	m.SetResolver(r)
	m.Update(snapshot(dnsClusterOf(xds.DNSConfig{RefreshRate: time.Hour}, "a.example")))
	c := m.Cluster("dns")
	for len(c.Hosts()) != 10 {
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if c.Pick(nil) == nil {
			b.Fatal("no host")
		}
	}
}

// TestDNSThroughAServer runs a STRICT_DNS cluster against a real name
// server on loopback (package dns's client): the name's A records become
// the hosts, and a new answer is taken after its TTL (respect_dns_ttl).
func TestDNSThroughAServer(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Set("api.example", time.Second, "127.0.0.11", "127.0.0.12")
	m := newTestManager(t, nil, 1)
	m.SetResolver(&dns.Client{Server: srv.Addr()})
	m.Update(snapshot(dnsClusterOf(xds.DNSConfig{Family: xds.DNSV4Only, RefreshRate: time.Hour, RespectTTL: true}, "api.example")))
	c := m.Cluster("dns")
	waitHosts(t, c, "127.0.0.11:80/1", "127.0.0.12:80/1")
	srv.Set("api.example", time.Second, "127.0.0.13")
	waitHosts(t, c, "127.0.0.13:80/1")
}
