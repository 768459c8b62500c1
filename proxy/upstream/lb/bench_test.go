package lb

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gowaypoint/waypoint/xds"
)

// benchClusters are the clusters BenchmarkPick runs over n hosts.
func benchClusters(n int) []struct {
	name string
	cl   *xds.Cluster
} {
	weighted := make([]uint32, n)
	long := make([]uint32, n)
	for i := range weighted {
		weighted[i] = uint32(i%4 + 1)
		long[i] = uint32(i*97 + 1) // a cycle too long for a table
	}
	return []struct {
		name string
		cl   *xds.Cluster
	}{
		{"RoundRobin", &xds.Cluster{LBPolicy: xds.LBPolicyRoundRobin, Endpoints: equal(n)}},
		{"RoundRobinWeighted", &xds.Cluster{LBPolicy: xds.LBPolicyRoundRobin, Endpoints: endpoints(weighted...)}},
		{"RoundRobinWeightedLongCycle", &xds.Cluster{LBPolicy: xds.LBPolicyRoundRobin, Endpoints: endpoints(long...)}},
		{"LeastRequest", &xds.Cluster{LBPolicy: xds.LBPolicyLeastRequest, Endpoints: equal(n)}},
		{"LeastRequestWeighted", &xds.Cluster{LBPolicy: xds.LBPolicyLeastRequest, Endpoints: endpoints(weighted...)}},
		{"Random", &xds.Cluster{LBPolicy: xds.LBPolicyRandom, Endpoints: equal(n)}},
		{"RandomWeighted", &xds.Cluster{LBPolicy: xds.LBPolicyRandom, Endpoints: endpoints(weighted...)}},
		{"RingHash", &xds.Cluster{LBPolicy: xds.LBPolicyRingHash, Endpoints: equal(n)}},
		{"Maglev", &xds.Cluster{LBPolicy: xds.LBPolicyMaglev, Endpoints: equal(n)}},
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, bc := range benchClusters(n) {
			b.Run(fmt.Sprintf("%s/%d", bc.name, n), func(b *testing.B) {
				bc.cl.Name = "c"
				m := NewManager(newFakeClock()) // the real random source
				defer m.Close()
				m.Update(snapshot(bc.cl))
				c := m.Cluster("c")
				pc := &PickContext{HasHash: true}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					pc.Hash = uint64(i) * 0x9e3779b97f4a7c15
					if c.Pick(pc) == nil {
						b.Fatal("no host")
					}
				}
			})
		}
	}
}

func BenchmarkPickParallel(b *testing.B) {
	for _, bc := range benchClusters(100) {
		b.Run(bc.name, func(b *testing.B) {
			bc.cl.Name = "c"
			m := NewManager(newFakeClock())
			defer m.Close()
			m.Update(snapshot(bc.cl))
			c := m.Cluster("c")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				pc := &PickContext{HasHash: true}
				for i := uint64(0); pb.Next(); i++ {
					pc.Hash = i * 0x9e3779b97f4a7c15
					c.Pick(pc)
				}
			})
		})
	}
}

// BenchmarkRequest is the per-request work around a pick: breaker, pick,
// begin, end with outlier detection on.
func BenchmarkRequest(b *testing.B) {
	m := NewManager(newFakeClock())
	defer m.Close()
	m.Update(snapshot(odCluster(10, nil)))
	c := m.Cluster("c")
	b.ReportAllocs()
	for b.Loop() {
		release, ok := c.Breakers().TryRequest()
		if !ok {
			b.Fatal("refused")
		}
		end := c.Pick(nil).Begin()
		end(Status(200))
		release()
	}
}

// BenchmarkPickRetry is a retry's pick through the Balancer interface,
// avoiding the two previous hosts by address.
func BenchmarkPickRetry(b *testing.B) {
	m := NewManager(newFakeClock())
	defer m.Close()
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(10)}))
	var bal Balancer = m.Cluster("c")
	prev := []netip.AddrPort{addr(0), addr(1)}
	b.ReportAllocs()
	for b.Loop() {
		pc := PickContext{ExcludeAddrs: prev, HostSelectionMaxAttempts: 2}
		if h := bal.Pick(&pc); h == nil {
			b.Fatal("no host")
		}
	}
}

// BenchmarkPickLevels is a pick through priority levels and localities
// (istiod's locality failover): 10 hosts in priority 0, 5 of them ejected
// so that 70% of picks stay there and 30% spill to priority 1's 10 hosts;
// and 3 weighted localities of 10 hosts in one priority.
func BenchmarkPickLevels(b *testing.B) {
	prio := odCluster(0, func(od *xds.OutlierDetection) {
		od.Consecutive5xx = 1
		od.MaxEjectionPercent = 100
	})
	prio.Endpoints = equal(20)
	for i := range prio.Endpoints {
		prio.Endpoints[i].Priority = uint32(i / 10)
	}
	prio.CommonLB = &xds.CommonLBConfig{}
	weighted := &xds.Cluster{Endpoints: equal(30), CommonLB: &xds.CommonLBConfig{LocalityWeighted: true}}
	for i := range weighted.Endpoints {
		r := i / 10
		weighted.Endpoints[i].Locality = xds.Locality{Region: fmt.Sprint("r", r)}
		weighted.Endpoints[i].LocalityWeight = uint32(r + 1)
	}
	for _, bc := range []struct {
		name string
		cl   *xds.Cluster
	}{{"Priorities", prio}, {"LocalityWeighted", weighted}} {
		b.Run(bc.name, func(b *testing.B) {
			bc.cl.Name = "c"
			m := NewManager(newFakeClock())
			defer m.Close()
			m.Update(snapshot(bc.cl))
			c := m.Cluster("c")
			if bc.cl.OutlierDetection != nil {
				for _, h := range c.Hosts()[:5] {
					send(h, Status(503))
					if !h.Ejected() {
						b.Fatal("not ejected")
					}
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if c.Pick(nil) == nil {
					b.Fatal("no host")
				}
			}
		})
	}
}
