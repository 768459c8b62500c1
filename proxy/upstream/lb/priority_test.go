package lb

import (
	"slices"
	"testing"

	"github.com/gowaypoint/waypoint/xds"
)

// level is n hosts of which healthy are healthy, for priorityLoad.
func level(healthy, n int) levelHosts {
	return levelHosts{hosts: make([]*Host, n), healthy: healthy}
}

func TestPriorityLoad(t *testing.T) {
	for _, tc := range []struct {
		name      string
		levels    []levelHosts
		factor    uint32
		threshold uint32
		load      []uint32
		panicked  []bool
	}{
		// Envoy's documented examples: two levels, P=1 fully healthy.
		{"P0 all healthy", []levelHosts{level(10, 10), level(10, 10)}, 140, 50, []uint32{100, 0}, []bool{false, false}},
		{"P0 72% healthy is still full", []levelHosts{level(72, 100), level(10, 10)}, 140, 50, []uint32{100, 0}, []bool{false, false}},
		{"P0 71% healthy", []levelHosts{level(71, 100), level(10, 10)}, 140, 50, []uint32{99, 1}, []bool{false, false}},
		{"P0 50% healthy", []levelHosts{level(1, 2), level(10, 10)}, 140, 50, []uint32{70, 30}, []bool{false, false}},
		{"P0 25% healthy", []levelHosts{level(1, 4), level(10, 10)}, 140, 50, []uint32{35, 65}, []bool{false, false}},
		{"P0 all ejected", []levelHosts{level(0, 1), level(1, 1)}, 140, 0, []uint32{0, 100}, []bool{false, false}},
		{"factor 100", []levelHosts{level(3, 4), level(4, 4)}, 100, 50, []uint32{75, 25}, []bool{false, false}},
		// Three levels: P1 not enough either, the rest to P2.
		{"spill through P1", []levelHosts{level(1, 4), level(1, 4), level(4, 4)}, 140, 50, []uint32{35, 35, 30}, []bool{false, false, false}},
		// Normalized total below 100: shares scaled up, panic per level.
		{"normalized", []levelHosts{level(1, 4), level(1, 4)}, 140, 20, []uint32{50, 50}, []bool{false, false}},
		{"one level in panic", []levelHosts{level(1, 4), level(1, 3)}, 140, 30, []uint32{44, 56}, []bool{true, false}},
		// Every level in panic: shared by host count.
		{"total panic", []levelHosts{level(0, 1), level(0, 3)}, 140, 50, []uint32{25, 75}, []bool{true, true}},
		// Nothing healthy and panic disabled: priority 0 has it all (and fails).
		{"nothing healthy, no panic", []levelHosts{level(0, 1), level(0, 1)}, 140, 0, []uint32{100, 0}, []bool{false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			load, panicked := priorityLoad(tc.levels, tc.factor, tc.threshold)
			if !slices.Equal(load, tc.load) || !slices.Equal(panicked, tc.panicked) {
				t.Errorf("load %v panic %v, want %v %v", load, panicked, tc.load, tc.panicked)
			}
		})
	}
}

// prioEndpoints returns endpoints (see endpoints) with the given
// priorities, weight 1.
func prioEndpoints(priorities ...uint32) []xds.Endpoint {
	eps := equal(len(priorities))
	for i, p := range priorities {
		eps[i].Priority = p
	}
	return eps
}

// TestPriorityFailover: all requests on priority 0 while it is healthy;
// ejecting its hosts moves their share to priority 1, by Envoy's
// overprovisioning rule.
func TestPriorityFailover(t *testing.T) {
	for _, policy := range []xds.LBPolicy{xds.LBPolicyRoundRobin, xds.LBPolicyLeastRequest, xds.LBPolicyRandom, xds.LBPolicyRingHash, xds.LBPolicyMaglev} {
		t.Run(policy.String(), func(t *testing.T) {
			cl := odCluster(0, func(od *xds.OutlierDetection) {
				od.Consecutive5xx = 1
				od.MaxEjectionPercent = 100
			})
			cl.LBPolicy = policy
			cl.Endpoints = prioEndpoints(0, 0, 1, 1)
			cl.CommonLB = &xds.CommonLBConfig{HealthyPanicThreshold: 0}
			c := clusterOf(t, cl)
			const n = 20000
			pc := func(i int) *PickContext { return &PickContext{Hash: uint64(i) * 0x9e3779b97f4a7c15, HasHash: true} }
			if got := counts(c, n, pc); got[0]+got[1] != n {
				t.Fatalf("healthy: %v, want all on priority 0", got)
			}
			send(c.Hosts()[0], Status(503))
			if !c.Hosts()[0].Ejected() {
				t.Fatal("host 0 not ejected")
			}
			// P0 50% healthy: 70% of requests, all on host 1; 30% on P1.
			got := counts(c, n, pc)
			if got[0] != 0 {
				t.Errorf("the ejected host got %d", got[0])
			}
			if s := float64(got[1]) / n; s < 0.67 || s > 0.73 {
				t.Errorf("P0 share %.3f, want 0.70:%s", s, fmtShares(got, n))
			}
			send(c.Hosts()[1], Status(503))
			if got := counts(c, n, pc); got[2]+got[3] != n || got[2] == 0 || got[3] == 0 {
				t.Errorf("P0 ejected: %v, want all on priority 1's two hosts", got)
			}
			if c.Panic() {
				t.Error("in panic with panic threshold 0")
			}
		})
	}
}

// TestPriorityGapAndOrder: priorities need not start at 0, be contiguous or
// come in order.
func TestPriorityGapAndOrder(t *testing.T) {
	c := clusterOf(t, &xds.Cluster{Name: "c", Endpoints: prioEndpoints(7, 3, 7)})
	if got := counts(c, 100, nil); got[1] != 100 {
		t.Errorf("%v, want all on host 1 (priority 3)", got)
	}
}

// locEndpoints are endpoints of one priority in localities named by
// region, each locality weighted by weights[region].
func locEndpoints(weights map[string]uint32, regions ...string) []xds.Endpoint {
	eps := equal(len(regions))
	for i, r := range regions {
		eps[i].Locality = xds.Locality{Region: r}
		eps[i].LocalityWeight = weights[r]
	}
	return eps
}

func TestLocalityWeighted(t *testing.T) {
	cl := odCluster(0, func(od *xds.OutlierDetection) {
		od.Consecutive5xx = 1
		od.MaxEjectionPercent = 100
	})
	cl.CommonLB = &xds.CommonLBConfig{HealthyPanicThreshold: 0, LocalityWeighted: true}
	// X (weight 1): hosts 0-3; Y (weight 2): hosts 4-5; Z (no weight): host 6.
	cl.Endpoints = locEndpoints(map[string]uint32{"x": 1, "y": 2}, "x", "x", "x", "x", "y", "y", "z")
	c := clusterOf(t, cl)
	share := func(got map[int]int, hosts ...int) float64 {
		s := 0
		for _, h := range hosts {
			s += got[h]
		}
		return float64(s) / 3000
	}
	got := counts(c, 3000, nil)
	if x, y := share(got, 0, 1, 2, 3), share(got, 4, 5); x != 1.0/3 || y != 2.0/3 || got[6] != 0 {
		t.Errorf("all healthy: X %.3f Y %.3f Z %d, want exactly 1/3, 2/3, 0", x, y, got[6])
	}
	for i := range 4 {
		if got[i] != 250 {
			t.Errorf("host %d of X got %d, want 250 (round robin inside the locality)", i, got[i])
		}
	}
	// Envoy's table: X 50% healthy: 26% to X, 74% to Y (weights 1×70, 2×100).
	send(c.Hosts()[0], Status(503))
	send(c.Hosts()[1], Status(503))
	got = counts(c, 3000, nil)
	if x := share(got, 2, 3); x < 0.255 || x > 0.263 || got[0]+got[1] != 0 {
		t.Errorf("X half ejected: X %.3f (hosts 0,1: %d), want 70/270 = 0.259 on hosts 2,3", x, got[0]+got[1])
	}
}

// TestLocalityWeightedNoWeight: a priority whose localities have no weight
// gives no host, as in Envoy.
func TestLocalityWeightedNoWeight(t *testing.T) {
	cl := &xds.Cluster{Name: "c", Endpoints: locEndpoints(nil, "x"), CommonLB: &xds.CommonLBConfig{LocalityWeighted: true}}
	if h := clusterOf(t, cl).Pick(nil); h != nil {
		t.Errorf("picked %v from a locality without weight", h)
	}
}

// TestLocalityChangeRebuilds: an update that changes only an endpoint's
// priority or locality takes effect.
func TestLocalityChangeRebuilds(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: prioEndpoints(0, 1)}))
	if got := counts(m.Cluster("c"), 10, nil); got[0] != 10 {
		t.Fatalf("%v, want all on host 0", got)
	}
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: prioEndpoints(1, 0)}))
	if got := counts(m.Cluster("c"), 10, nil); got[1] != 10 {
		t.Errorf("after the swap: %v, want all on host 1", got)
	}
}

// TestLocalityWeightedHashed: RING_HASH and MAGLEV fold locality weights
// into host weights: x (weight 1, two hosts), y (weight 3, one host), z (no
// weight) get 1/8, 1/8, 3/4 and nothing.
func TestLocalityWeightedHashed(t *testing.T) {
	for _, policy := range []xds.LBPolicy{xds.LBPolicyRingHash, xds.LBPolicyMaglev} {
		t.Run(policy.String(), func(t *testing.T) {
			cl := &xds.Cluster{Name: "c", LBPolicy: policy, CommonLB: &xds.CommonLBConfig{LocalityWeighted: true},
				Endpoints: locEndpoints(map[string]uint32{"x": 1, "y": 3}, "x", "x", "y", "z")}
			c := clusterOf(t, cl)
			const n = 40000
			got := counts(c, n, func(i int) *PickContext {
				return &PickContext{Hash: uint64(i) * 0x9e3779b97f4a7c15, HasHash: true}
			})
			for i, want := range []float64{0.125, 0.125, 0.75, 0} {
				if s := float64(got[i]) / n; s < want-0.03 || s > want+0.03 {
					t.Errorf("host %d: share %.3f, want %.3f:%s", i, s, want, fmtShares(got, n))
				}
			}
		})
	}
}
