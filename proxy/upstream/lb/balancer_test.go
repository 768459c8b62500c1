package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/gowaypoint/waypoint/xds"
)

func TestRoundRobinExactOverACycle(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		picker  string // the implementation expected
	}{
		{"equal weights rotate", []uint32{1, 1, 1, 1}, "*lb.rotation"},
		{"equal large weights rotate", []uint32{7, 7, 7}, "*lb.rotation"},
		{"small cycle from a table", []uint32{1, 2, 3, 4}, "*lb.cycleTable"},
		{"weights reduced by their gcd", []uint32{100, 200, 300}, "*lb.cycleTable"},
		{"long cycle live", []uint32{1, 3000, 2000, 7}, "*lb.liveEDF"},
		{"huge weights live", []uint32{4294967295, 4294967294, 1}, "*lb.liveEDF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := clusterOf(t, &xds.Cluster{Name: "c", Endpoints: endpoints(tc.weights...)})
			if got := fmt.Sprintf("%T", c.set.Load().p); got != tc.picker {
				t.Fatalf("picker %s, want %s", got, tc.picker)
			}
			g := uint64(0)
			for _, w := range tc.weights {
				g = gcd(g, uint64(w))
			}
			var cycle uint64
			for _, w := range tc.weights {
				cycle += uint64(w) / g
			}
			if cycle > 100_000 {
				cycle = 100_000 // the first part of a huge cycle: check the interleaving only
			}
			for round := range 3 {
				got := counts(c, int(cycle), nil)
				for i, w := range tc.weights {
					want := int(uint64(w) / g)
					if cycle == 100_000 {
						want = int(math.Round(float64(w) / float64(sum(tc.weights)) * 100_000))
						if d := got[i] - want; d < -1 || d > 1 {
							t.Errorf("round %d: host %d picked %d times, want %d±1", round, i, got[i], want)
						}
						continue
					}
					if got[i] != want {
						t.Errorf("round %d: host %d picked %d times in a cycle of %d, want %d", round, i, got[i], cycle, want)
					}
				}
			}
		})
	}
}

func TestRoundRobinSequence(t *testing.T) {
	// EDF: host 1 (weight 2) is due at 1/2, then both at 1: the lower index
	// first. Equal weights: consecutive hosts.
	c := clusterOf(t, &xds.Cluster{Name: "c", Endpoints: endpoints(1, 2)})
	var seq []int
	for range 6 {
		seq = append(seq, index(c.Pick(nil)))
	}
	if rot := slices.Index(seq, 1); !slices.Equal(rotate(seq, rot), []int{1, 0, 1, 1, 0, 1}) {
		t.Errorf("weights 1,2: sequence %v is not a rotation of [1 0 1 1 0 1]", seq)
	}
	c = clusterOf(t, &xds.Cluster{Name: "c", Endpoints: equal(3)})
	first := index(c.Pick(nil))
	for i := 1; i < 7; i++ {
		if got, want := index(c.Pick(nil)), (first+i)%3; got != want {
			t.Fatalf("pick %d: host %d, want %d", i, got, want)
		}
	}
}

func TestLeastRequestPrefersIdleHosts(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		active  []int64
		choices uint32
		bias    float64
		check   func(t *testing.T, got map[int]int, n int)
	}{
		{
			name: "two choices: the idle host wins whenever sampled", weights: []uint32{1, 1, 1, 1},
			active: []int64{5, 0, 5, 5}, choices: 2,
			// P(host 1 among 2 samples) = 1 - (3/4)^2 = 0.4375.
			check: shareNear(1, 0.4375, 0.01),
		},
		{
			name: "many choices: nearly always the idle host", weights: []uint32{1, 1, 1, 1},
			active: []int64{5, 0, 5, 5}, choices: 20,
			check: shareNear(1, 1-math.Pow(0.75, 20), 0.005),
		},
		{
			name: "busy host avoided", weights: []uint32{1, 1, 1},
			active: []int64{0, 9, 0}, choices: 2,
			// Host 1 only when sampled twice: 1/9.
			check: shareNear(1, 1.0/9, 0.01),
		},
		{
			name: "unequal weights: weight/(active+1)", weights: []uint32{2, 2, 1},
			active: []int64{3, 0, 0}, choices: 2, bias: 1,
			// Effective weights 0.5, 2, 1 (the counts do not change).
			check: sharesNear([]float64{0.5 / 3.5, 2 / 3.5, 1 / 3.5}, 0.002),
		},
		{
			name: "unequal weights, bias 2", weights: []uint32{2, 2, 1},
			active: []int64{1, 0, 0}, choices: 2, bias: 2,
			check: sharesNear([]float64{0.5 / 3.5, 2 / 3.5, 1 / 3.5}, 0.002),
		},
		{
			name: "unequal weights, bias 0 is weighted round robin", weights: []uint32{2, 2, 1},
			active: []int64{100, 0, 0}, choices: 2, bias: 0,
			check: sharesNear([]float64{0.4, 0.4, 0.2}, 0.001),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyLeastRequest, Endpoints: endpoints(tc.weights...),
				LeastRequest: &xds.LeastRequestConfig{ChoiceCount: tc.choices, ActiveRequestBias: tc.bias}})
			for i, h := range c.Hosts() {
				h.s.active.Store(tc.active[i])
			}
			// Rebuild so that the weighted schedule starts from these counts.
			c.mu.Lock()
			c.rebuildLocked()
			c.mu.Unlock()
			const n = 100_000
			tc.check(t, counts(c, n, nil), n)
		})
	}
}

func TestLeastRequestFollowsBeginAndEnd(t *testing.T) {
	c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyLeastRequest, Endpoints: equal(2),
		LeastRequest: &xds.LeastRequestConfig{ChoiceCount: 10, ActiveRequestBias: 1}})
	busy := c.Hosts()[0]
	var ends []func(Result)
	for range 3 {
		ends = append(ends, busy.Begin())
	}
	if got := counts(c, 1000, nil); got[0] > 5 {
		t.Errorf("host with 3 active requests picked %d/1000 times", got[0])
	}
	for _, end := range ends {
		end(Status(200))
	}
	if busy.Active() != 0 {
		t.Fatalf("Active = %d after all ended", busy.Active())
	}
	if got := counts(c, 1000, nil); got[0] < 400 {
		t.Errorf("idle again, host 0 picked only %d/1000 times", got[0])
	}
}

func TestRandomWeighted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []uint32
		want    []float64
	}{
		{"equal", []uint32{1, 1, 1, 1}, []float64{0.25, 0.25, 0.25, 0.25}},
		{"weighted", []uint32{1, 2, 7}, []float64{0.1, 0.2, 0.7}},
		{"one heavy host", []uint32{1, 1, 1, 97}, []float64{0.01, 0.01, 0.01, 0.97}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyRandom, Endpoints: endpoints(tc.weights...)})
			const n = 100_000
			sharesNear(tc.want, 0.006)(t, counts(c, n, nil), n)
		})
	}
}

func TestHashPolicies(t *testing.T) {
	for _, policy := range []xds.LBPolicy{xds.LBPolicyRingHash, xds.LBPolicyMaglev} {
		t.Run(policy.String(), func(t *testing.T) {
			cluster := func(eps []xds.Endpoint) *xds.Cluster {
				return &xds.Cluster{Name: "c", LBPolicy: policy, Endpoints: eps}
			}
			keys := make([]uint64, 20_000)
			r := rand.New(rand.NewPCG(7, 7))
			for i := range keys {
				keys[i] = r.Uint64()
			}
			pickAll := func(c *ClusterState) []netip.AddrPort {
				out := make([]netip.AddrPort, len(keys))
				for i, k := range keys {
					out[i] = c.Pick(&PickContext{Hash: k, HasHash: true}).Addr
				}
				return out
			}

			ten := clusterOf(t, cluster(equal(10)))
			before := pickAll(ten)
			if again := pickAll(ten); !slices.Equal(before, again) {
				t.Fatal("the same keys mapped to different hosts")
			}
			// Another balancer built from the same hosts agrees.
			if other := pickAll(clusterOf(t, cluster(equal(10)))); !slices.Equal(before, other) {
				t.Fatal("two balancers over the same hosts disagree")
			}

			// Remove host 4: its keys move, and few others do.
			nine := clusterOf(t, cluster(slices.Delete(equal(10), 4, 5)))
			after := pickAll(nine)
			removed := addr(4)
			var moved, onRemoved int
			for i := range keys {
				switch {
				case before[i] == removed:
					onRemoved++
					if after[i] == removed {
						t.Fatal("a key still maps to the removed host")
					}
				case before[i] != after[i]:
					moved++
				}
			}
			share := float64(onRemoved) / float64(len(keys))
			movedShare := float64(moved+onRemoved) / float64(len(keys))
			if share < 0.05 || share > 0.15 {
				t.Errorf("removed host held %.3f of the keys, want about 1/10", share)
			}
			if movedShare > 0.2 {
				t.Errorf("removing 1 of 10 hosts moved %.3f of the keys, want about 1/10", movedShare)
			}

			// Weights shift shares.
			w := clusterOf(t, cluster(endpoints(1, 1, 2)))
			got := map[int]int{}
			for _, k := range keys {
				got[index(w.Pick(&PickContext{Hash: k, HasHash: true}))]++
			}
			sharesNear([]float64{0.25, 0.25, 0.5}, 0.04)(t, got, len(keys))

			// No hash: random picks spread over all hosts.
			spread := counts(ten, 10_000, nil)
			if len(spread) != 10 {
				t.Errorf("without a hash, picks reached %d of 10 hosts", len(spread))
			}
		})
	}
}

func TestRingSize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		weights  []uint32
		min, max uint64
		want     []int // entries per host
	}{
		{"equal hosts share the minimum", []uint32{1, 1, 1, 1}, 1024, 8 << 20, []int{256, 256, 256, 256}},
		{"rounded up per host", []uint32{1, 1, 1}, 1024, 8 << 20, []int{342, 342, 342}},
		{"shared by weight", []uint32{1, 3}, 100, 8 << 20, []int{25, 75}},
		{"lightest host rounded up to a whole entry", []uint32{1, 3}, 10, 8 << 20, []int{3, 9}},
		{"capped by the maximum", []uint32{1, 3}, 1000, 1000, []int{250, 750}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyRingHash, Endpoints: endpoints(tc.weights...),
				RingHash: &xds.RingHashConfig{MinimumRingSize: tc.min, MaximumRingSize: tc.max}})
			r := c.set.Load().p.(*ring)
			got := make([]int, len(tc.weights))
			for _, i := range r.idx {
				got[i]++
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("entries per host %v, want %v", got, tc.want)
			}
			if !slices.IsSorted(r.hashes) {
				t.Error("ring not sorted")
			}
		})
	}
}

func TestMaglevTableShares(t *testing.T) {
	c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: xds.LBPolicyMaglev, Endpoints: endpoints(1, 2, 1),
		Maglev: &xds.MaglevConfig{TableSize: 65537}})
	m := c.set.Load().p.(*maglev)
	got := map[string]int{}
	for _, i := range m.table {
		got[m.hosts[i].Addr.String()]++
	}
	// Weight 2 of 4 fills every round, weight 1 every other: exact to a slot.
	for i, want := range []float64{0.25, 0.5, 0.25} {
		share := float64(got[addr(i).String()]) / 65537
		if math.Abs(share-want) > 0.001 {
			t.Errorf("host %d holds %.4f of the table, want %.2f", i, share, want)
		}
	}
}

func TestExcludeRepicks(t *testing.T) {
	policies := []xds.LBPolicy{xds.LBPolicyRoundRobin, xds.LBPolicyLeastRequest, xds.LBPolicyRandom, xds.LBPolicyRingHash, xds.LBPolicyMaglev}
	for _, policy := range policies {
		t.Run(policy.String(), func(t *testing.T) {
			c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: policy, Endpoints: equal(3)})
			previous := map[int]bool{0: true, 1: true}
			exclude := func(h *Host) bool { return previous[index(h)] }
			var tries int
			counting := func(h *Host) bool { tries++; return exclude(h) }

			// Enough attempts: host 2, the only one not excluded.
			for k := range 200 {
				pc := &PickContext{Hash: uint64(k) * 0x9e3779b97f4a7c15, HasHash: k%2 == 0, Exclude: exclude, HostSelectionMaxAttempts: 50}
				if h := c.Pick(pc); index(h) != 2 {
					t.Fatalf("pick %d: host %d, want the one not excluded", k, index(h))
				}
			}
			// The same by address, as a retry lists previous hosts.
			for k := range 200 {
				pc := &PickContext{Hash: uint64(k), HasHash: k%2 == 0, ExcludeAddrs: []netip.AddrPort{addr(1), addr(0)}, HostSelectionMaxAttempts: 50}
				if h := c.Pick(pc); index(h) != 2 {
					t.Fatalf("pick %d by address: host %d, want the one not excluded", k, index(h))
				}
			}
			// No re-pick allowed: one attempt, whatever it returns.
			tries = 0
			for k := range 100 {
				c.Pick(&PickContext{Hash: uint64(k), HasHash: true, Exclude: counting})
			}
			if tries != 100 {
				t.Errorf("HostSelectionMaxAttempts 0: Exclude called %d times for 100 picks, want 100", tries)
			}
			// The policy keeps landing on rejected hosts (as requests picking
			// from one round robin at once can make it): the host left that
			// is not rejected, not the last one picked.
			for k := range 50 {
				calls := 0
				unlucky := func(h *Host) bool { calls++; return calls <= 4 || previous[index(h)] }
				if h := c.Pick(&PickContext{Hash: uint64(k), HasHash: true, Exclude: unlucky, HostSelectionMaxAttempts: 3}); index(h) != 2 {
					t.Fatalf("pick %d, every attempt rejected: host %d, want 2, the one left that is not", k, index(h))
				}
			}
			// Everything excluded: the last host picked, after 1+3 attempts
			// and a look at each of the 3 hosts.
			tries = 0
			all := func(*Host) bool { tries++; return true }
			if h := c.Pick(&PickContext{Exclude: all, HostSelectionMaxAttempts: 3}); h == nil {
				t.Error("all hosts excluded: want the last one picked, got nil")
			}
			if tries != 7 {
				t.Errorf("Exclude called %d times, want 7", tries)
			}
		})
	}
}

func TestEmptyCluster(t *testing.T) {
	c := clusterOf(t, &xds.Cluster{Name: "c"})
	if h := c.Pick(nil); h != nil {
		t.Errorf("Pick on an empty cluster = %v, want nil", h)
	}
	if h := c.Pick(&PickContext{Exclude: func(*Host) bool { return true }, HostSelectionMaxAttempts: 2}); h != nil {
		t.Errorf("Pick = %v, want nil", h)
	}
}

func TestInPanic(t *testing.T) {
	for _, tc := range []struct {
		healthy, total int
		threshold      uint32
		want           bool
	}{
		{0, 0, 50, false},
		{4, 4, 50, false},
		{1, 4, 50, true},
		{2, 4, 50, false}, // 50% is not below 50%
		{3, 4, 80, false}, // 75%*1.4 >= 100%: fully available
		{7, 10, 80, true}, // 70%*1.4 = 98%: not fully available, below 80%
		{0, 4, 0, false},  // threshold 0 disables panic
		{0, 4, 100, true}, // everything ejected
		{99, 100, 100, false},
	} {
		if got := inPanic(tc.healthy, tc.total, tc.threshold, 140); got != tc.want {
			t.Errorf("inPanic(%d, %d, %d) = %v, want %v", tc.healthy, tc.total, tc.threshold, got, tc.want)
		}
	}
}

// shareNear checks that host i got share±tol of n picks.
func shareNear(i int, share, tol float64) func(*testing.T, map[int]int, int) {
	return func(t *testing.T, got map[int]int, n int) {
		t.Helper()
		if s := float64(got[i]) / float64(n); math.Abs(s-share) > tol {
			t.Errorf("host %d got %.4f of the picks, want %.4f±%.4f (%s)", i, s, share, tol, fmtShares(got, n))
		}
	}
}

// sharesNear checks every host's share.
func sharesNear(shares []float64, tol float64) func(*testing.T, map[int]int, int) {
	return func(t *testing.T, got map[int]int, n int) {
		t.Helper()
		for i, want := range shares {
			if s := float64(got[i]) / float64(n); math.Abs(s-want) > tol {
				t.Errorf("host %d got %.4f of the picks, want %.4f±%.4f (%s)", i, s, want, tol, fmtShares(got, n))
			}
		}
	}
}

func sum(ws []uint32) uint64 {
	var s uint64
	for _, w := range ws {
		s += uint64(w)
	}
	return s
}

func rotate(s []int, k int) []int {
	if k < 0 {
		return s
	}
	return append(slices.Clone(s[k:]), s[:k]...)
}

func TestPrefer(t *testing.T) {
	policies := []xds.LBPolicy{xds.LBPolicyRoundRobin, xds.LBPolicyLeastRequest, xds.LBPolicyRandom, xds.LBPolicyRingHash, xds.LBPolicyMaglev}
	for _, policy := range policies {
		t.Run(policy.String(), func(t *testing.T) {
			c := clusterOf(t, &xds.Cluster{Name: "c", LBPolicy: policy, Endpoints: equal(4)})
			cases := []struct {
				name    string
				prefer  func(*Host) bool
				exclude []netip.AddrPort
				want    map[int]bool // the hosts a pick may return
			}{
				{"two preferred", func(h *Host) bool { return index(h) == 1 || index(h) == 3 }, nil, map[int]bool{1: true, 3: true}},
				{"one preferred", func(h *Host) bool { return index(h) == 2 }, nil, map[int]bool{2: true}},
				{"a preferred host excluded: the other", func(h *Host) bool { return index(h) == 1 || index(h) == 3 },
					[]netip.AddrPort{addr(1)}, map[int]bool{3: true}},
				{"the only preferred host excluded: it still", func(h *Host) bool { return index(h) == 2 },
					[]netip.AddrPort{addr(2)}, map[int]bool{2: true}},
				{"none preferred: any", func(*Host) bool { return false }, nil, map[int]bool{0: true, 1: true, 2: true, 3: true}},
			}
			for _, tc := range cases {
				seen := map[int]bool{}
				for k := range 200 {
					pc := &PickContext{Hash: uint64(k) * 0x9e3779b97f4a7c15, HasHash: k%2 == 0, Prefer: tc.prefer, ExcludeAddrs: tc.exclude}
					h := c.Pick(pc)
					if !tc.want[index(h)] {
						t.Fatalf("%s: pick %d: host %d, want one of %v", tc.name, k, index(h), tc.want)
					}
					seen[index(h)] = true
				}
				if len(seen) != len(tc.want) && tc.exclude == nil {
					t.Errorf("%s: picked %v of %v", tc.name, seen, tc.want)
				}
			}
		})
	}
}
