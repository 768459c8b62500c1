package lb

import (
	"sync"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/protocols/spiffe"
	"github.com/gowaypoint/waypoint/protocols/status"
	"github.com/gowaypoint/waypoint/xds"
)

func TestUpdateKeepsHostsByAddress(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: endpoints(1, 1, 1)}))
	c := m.Cluster("c")
	before := c.Hosts()
	end := before[1].Begin()

	eps := endpoints(1, 5, 1, 1)
	eps[2].Identity = spiffe.ID{TrustDomain: "td", Namespace: "ns", ServiceAccount: "sa"}
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: eps}))
	after := c.Hosts()
	if len(after) != 4 {
		t.Fatalf("%d hosts, want 4", len(after))
	}
	if after[0] != before[0] {
		t.Error("unchanged host 0 is a new *Host")
	}
	if after[1] == before[1] || after[1].Weight != 5 {
		t.Errorf("host 1: weight %d, same pointer %v; want a new Host of weight 5", after[1].Weight, after[1] == before[1])
	}
	if after[1].Active() != 1 {
		t.Errorf("host 1 with a new weight has %d active requests, want the 1 begun before", after[1].Active())
	}
	end(Status(200))
	if after[1].Active() != 0 || before[1].Active() != 0 {
		t.Error("ending through the old Host did not reach the shared state")
	}
	if after[2] == before[2] || after[2].Identity != eps[2].Identity {
		t.Error("host 2's new identity not applied")
	}
}

func TestUpdateKeepsRoundRobinPosition(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(3)}))
	c := m.Cluster("c")
	first := index(c.Pick(nil))
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(3)}))
	if got, want := index(c.Pick(nil)), (first+1)%3; got != want {
		t.Errorf("after Update: host %d, want %d (the rotation restarted)", got, want)
	}
}

func TestUpdateChangesPolicy(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(3)}))
	c := m.Cluster("c")
	if _, ok := c.set.Load().p.(*rotation); !ok {
		t.Fatalf("picker %T, want round robin", c.set.Load().p)
	}
	m.Update(snapshot(&xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyRingHash, Endpoints: equal(3)}))
	if _, ok := c.set.Load().p.(*ring); !ok {
		t.Fatalf("picker %T after the policy changed, want a ring", c.set.Load().p)
	}
	p := c.set.Load().p
	m.Update(snapshot(&xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyRingHash, Endpoints: equal(3)}))
	if c.set.Load().p != p {
		t.Error("an unchanged cluster rebuilt its ring")
	}
}

func TestUpdateDropsClusters(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "a", Endpoints: equal(1)}, &xds.Cluster{Name: "b", Endpoints: equal(1)}))
	a := m.Cluster("a")
	release, _ := a.Breakers().TryRequest()
	defer release()
	m.Update(snapshot(&xds.Cluster{Name: "b", Endpoints: equal(1)}))
	if m.Cluster("a") != nil {
		t.Fatal("cluster a still known")
	}
	m.Update(snapshot(&xds.Cluster{Name: "a", Endpoints: equal(1)}, &xds.Cluster{Name: "b", Endpoints: equal(1)}))
	if got := m.Cluster("a"); got == a {
		t.Error("cluster a came back with its old state")
	} else if _, _, n, _ := got.Breakers().InFlight(); n != 0 {
		t.Errorf("new cluster a has %d requests in flight", n)
	}
	m.Update(nil)
	if m.Cluster("b") != nil {
		t.Error("Update(nil) kept cluster b")
	}
}

// sweepClock is the real clock, telling each time an AfterFunc callback
// (an outlier detection sweep) has returned.
type sweepClock struct {
	realClock
	swept chan struct{}
}

func (c sweepClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, func() {
		f()
		select {
		case c.swept <- struct{}{}:
		default: // nobody counting any more
		}
	})
}

func TestCloseStopsTimers(t *testing.T) {
	clock := sweepClock{swept: make(chan struct{})}
	m := NewManager(clock) // real time: goleak in TestMain checks the timers end
	m.Update(snapshot(odCluster(3, func(o *xds.OutlierDetection) {
		o.Interval = time.Millisecond
		o.MaxEjectionPercent = 100
	})))
	h := m.Cluster("c").Hosts()[0]
	send(h, repeat(Status(500), 5)...)
	for range 3 { // some sweeps ran, each arming the next timer
		<-clock.swept
	}
	m.Close()
	if m.Cluster("c") != nil {
		t.Error("cluster known after Close")
	}
	m.Update(snapshot(odCluster(3, nil)))
	if m.Cluster("c") != nil {
		t.Error("Update after Close added a cluster")
	}
	send(h, Status(200)) // a request ending after Close
	m.Close()            // twice is fine
}

// TestConcurrentUse runs picks, requests, updates and sweeps at once; it
// is meant for the race detector.
func TestConcurrentUse(t *testing.T) {
	clock := newFakeClock()
	m := NewManager(clock)
	defer m.Close()
	policies := []xds.LBPolicy{xds.LBPolicyRoundRobin, xds.LBPolicyLeastRequest, xds.LBPolicyRandom, xds.LBPolicyRingHash, xds.LBPolicyMaglev}
	snap := func(i int) *xds.Snapshot {
		var cls []*xds.Cluster
		for j, p := range policies {
			cl := odCluster(8, func(o *xds.OutlierDetection) { o.MaxEjectionPercent = 50; o.Consecutive5xx = 3 })
			cl.Name = p.String()
			cl.LBPolicy = p
			if p == xds.LBPolicyMaglev {
				cl.Maglev = &xds.MaglevConfig{TableSize: 1009} // cheaper rebuilds
			}
			if (i+j)%2 == 1 {
				cl.Endpoints = endpoints(1, 2, 3, 1, 2, 3, 1, 2)
			}
			cls = append(cls, cl)
		}
		return snapshot(cls...)
	}
	m.Update(snap(0))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := m.Cluster(policies[(g+i)%len(policies)].String())
				h := c.Pick(&PickContext{Hash: uint64(i), HasHash: i%3 == 0, Exclude: func(h *Host) bool { return h.Addr == addr(0) }, HostSelectionMaxAttempts: 1})
				if h == nil {
					continue
				}
				end := h.Begin()
				if release, ok := c.Breakers().TryRequest(); ok {
					release()
				}
				if i%4 == 0 {
					end(Status(503))
				} else {
					end(Status(200))
				}
			}
		}()
	}
	for i := range 50 {
		m.Update(snap(i))
		clock.Advance(5 * time.Second)
	}
	close(stop)
	wg.Wait()
	for _, p := range policies {
		for _, h := range m.Cluster(p.String()).Hosts() {
			if h.Active() != 0 {
				t.Errorf("%s %s: %d active after all ended", p, h, h.Active())
			}
		}
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{
		Status(503): "status 503", ConnectFailed: "connect failure", Reset: "reset",
		Timeout: "timeout", Connected: "connected", Canceled: "canceled",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint32(r), got, want)
		}
	}
	if c, ok := Status(204).Code(); !ok || c != 204 {
		t.Errorf("Status(204).Code() = %d, %v", c, ok)
	}
	if _, ok := Timeout.Code(); ok {
		t.Error("Timeout has a status code")
	}
	for k, want := range map[status.Kind]Result{
		status.ConnectFailure: ConnectFailed, status.UpstreamReset: Reset, status.RefusedStream: Reset, status.ConnectionTermination: Reset,
		status.Timeout: Timeout, status.Overflow: Canceled, status.DownstreamGone: Canceled, status.NoHealthyUpstream: Canceled,
	} {
		if got := ResultOf(k); got != want {
			t.Errorf("ResultOf(%v) = %v, want %v", k, got, want)
		}
	}
}

// TestFromBootstrap runs decoded config through the Manager: the cluster
// options istiod and Envoy users write reach the balancer.
func TestFromBootstrap(t *testing.T) {
	const doc = `
static_resources:
  listeners:
  - {name: main, address: {socket_address: {address: 127.0.23.1, port_value: 0}},
     filter_chains: [{filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: s, cluster: ring}}]}]}
  clusters:
  - name: ring
    lb_policy: RING_HASH
    ring_hash_lb_config: {minimum_ring_size: 64, maximum_ring_size: 128}
    common_lb_config: {healthy_panic_threshold: {}}
    circuit_breakers: {thresholds: [{max_requests: 1}]}
    outlier_detection: {consecutive_5xx: 2, max_ejection_percent: 100, interval: 1s}
    load_assignment: {cluster_name: ring, endpoints: [{lb_endpoints: [
      {endpoint: {address: {socket_address: {address: 127.0.23.1, port_value: 80}}}},
      {endpoint: {address: {socket_address: {address: 127.0.23.2, port_value: 80}}}, load_balancing_weight: 3}]}]}
`
	b, err := xds.ParseBootstrap([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	m := newTestManager(t, clock, 1)
	m.Update(b.Snapshot)
	c := m.Cluster("ring")
	r, ok := c.set.Load().p.(*ring)
	if !ok || len(r.hashes) != 64 {
		t.Fatalf("picker %T with %d entries, want a ring of 64", c.set.Load().p, len(r.hashes))
	}
	if _, ok := c.Breakers().TryRequest(); !ok {
		t.Fatal("first request refused")
	}
	if _, ok := c.Breakers().TryRequest(); ok {
		t.Error("max_requests 1 not applied")
	}
	h := c.Hosts()[0]
	send(h, Status(500), Status(500))
	if !h.Ejected() {
		t.Fatal("consecutive_5xx 2 not applied")
	}
	send(c.Hosts()[1], Status(500), Status(500))
	if c.Panic() || c.Pick(nil) != nil {
		t.Error("healthy_panic_threshold 0%: want no panic and no host with both ejected")
	}
	clock.Advance(30 * time.Second)
	if c.Pick(nil) == nil {
		t.Error("no host after the ejections ended (interval 1s)")
	}
}
