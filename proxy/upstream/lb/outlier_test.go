package lb

import (
	"slices"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// odCluster is a cluster "c" of n equal hosts with Envoy's outlier
// detection defaults changed by f.
func odCluster(n int, f func(*xds.OutlierDetection)) *xds.Cluster {
	od := xds.DefaultOutlierDetection
	if f != nil {
		f(&od)
	}
	return &xds.Cluster{Name: "c", Endpoints: equal(n), OutlierDetection: &od}
}

// send ends one request to h per result.
func send(h *Host, results ...Result) {
	for _, r := range results {
		h.Begin()(r)
	}
}

func repeat(r Result, n int) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func cat(rs ...[]Result) []Result { return slices.Concat(rs...) }

func ejectedHosts(c *ClusterState) []int {
	var out []int
	for i, h := range c.Hosts() {
		if h.Ejected() {
			out = append(out, i)
		}
	}
	return out
}

func TestConsecutiveFailuresEject(t *testing.T) {
	s500, s502, ok := Status(500), Status(502), Status(200)
	tests := []struct {
		name    string
		od      func(*xds.OutlierDetection)
		results []Result
		ejected bool
	}{
		{"5 consecutive 5xx", nil, repeat(s500, 5), true},
		{"4 are not enough", nil, repeat(s500, 4), false},
		{"a success in between resets the count", nil, cat(repeat(s500, 4), []Result{ok}, repeat(s500, 4)), false},
		{"a 4xx is a success", nil, cat(repeat(s500, 4), []Result{Status(404)}, repeat(s500, 4)), false},
		{"a canceled request neither counts nor resets", nil, cat(repeat(s500, 4), []Result{Canceled}, []Result{s500}), true},
		{"consecutive_5xx from config", func(o *xds.OutlierDetection) { o.Consecutive5xx = 2 }, repeat(s500, 2), true},
		{"5xx not enforced", func(o *xds.OutlierDetection) { o.EnforcingConsecutive5xx = 0 }, repeat(s500, 20), false},
		{"gateway failures when enforced", func(o *xds.OutlierDetection) {
			o.Consecutive5xx, o.ConsecutiveGatewayFailure, o.EnforcingConsecutiveGatewayFailure = 100, 3, 100
		}, repeat(s502, 3), true},
		{"gateway failures not enforced by default", func(o *xds.OutlierDetection) {
			o.Consecutive5xx, o.ConsecutiveGatewayFailure = 100, 3
		}, repeat(s502, 10), false},
		{"a non-gateway 5xx breaks a run of gateway failures", func(o *xds.OutlierDetection) {
			o.Consecutive5xx, o.ConsecutiveGatewayFailure, o.EnforcingConsecutiveGatewayFailure = 100, 3, 100
		}, []Result{s502, s502, s500, s502, s502}, false},
		{"connect failures are 503s", func(o *xds.OutlierDetection) {
			o.Consecutive5xx, o.ConsecutiveGatewayFailure, o.EnforcingConsecutiveGatewayFailure = 100, 3, 100
		}, []Result{ConnectFailed, Reset, Status(503)}, true},
		{"connect failures count as 5xx", nil, repeat(ConnectFailed, 5), true},
		{"timeouts are 504s", func(o *xds.OutlierDetection) {
			o.Consecutive5xx, o.ConsecutiveGatewayFailure, o.EnforcingConsecutiveGatewayFailure = 100, 2, 100
		}, []Result{Timeout, Status(504)}, true},
		{"split: local-origin failures have their own count", func(o *xds.OutlierDetection) {
			o.SplitExternalLocalOriginErrors, o.ConsecutiveLocalOriginFailure = true, 3
		}, []Result{ConnectFailed, Timeout, Reset}, true},
		{"split: local-origin failures are not 5xx", func(o *xds.OutlierDetection) {
			o.SplitExternalLocalOriginErrors, o.EnforcingConsecutiveLocalOriginFailure = true, 0
		}, repeat(ConnectFailed, 20), false},
		{"split: a response shows the connection worked", func(o *xds.OutlierDetection) {
			o.SplitExternalLocalOriginErrors, o.ConsecutiveLocalOriginFailure = true, 3
		}, []Result{ConnectFailed, ConnectFailed, s500, ConnectFailed, ConnectFailed}, false},
		{"split: a TCP connection shows it too", func(o *xds.OutlierDetection) {
			o.SplitExternalLocalOriginErrors, o.ConsecutiveLocalOriginFailure = true, 3
		}, []Result{ConnectFailed, ConnectFailed, Connected, ConnectFailed, ConnectFailed}, false},
		{"split: 5xx still counted", func(o *xds.OutlierDetection) {
			o.SplitExternalLocalOriginErrors = true
		}, repeat(s500, 5), true},
		{"TCP: a connection is a success", nil, cat(repeat(ConnectFailed, 4), []Result{Connected}, repeat(ConnectFailed, 4)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := clusterOf(t, odCluster(4, func(o *xds.OutlierDetection) {
				o.MaxEjectionPercent = 100
				if tc.od != nil {
					tc.od(o)
				}
			}))
			h := c.Hosts()[0]
			send(h, tc.results...)
			if h.Ejected() != tc.ejected {
				t.Fatalf("ejected = %v, want %v", h.Ejected(), tc.ejected)
			}
			if h.Active() != 0 {
				t.Errorf("Active = %d after every request ended", h.Active())
			}
			if got := counts(c, 300, nil); tc.ejected && got[0] != 0 {
				t.Errorf("ejected host picked %d times", got[0])
			} else if !tc.ejected && got[0] == 0 {
				t.Error("healthy host never picked")
			}
		})
	}
}

func TestEjectionTimeGrows(t *testing.T) {
	clock := newFakeClock()
	m := newTestManager(t, clock, 1)
	m.Update(snapshot(odCluster(4, func(o *xds.OutlierDetection) {
		o.MaxEjectionPercent = 100
		o.MaxEjectionTime = 70 * time.Second
	})))
	c := m.Cluster("c")
	h := c.Hosts()[0]

	// Interval 10s, base 30s: the nth ejection lasts min(n*30s, 70s), seen
	// by the sweep at its end (ejections start at a sweep here).
	for n, want := range []time.Duration{30 * time.Second, 60 * time.Second, 70 * time.Second} {
		send(h, repeat(Status(500), 5)...)
		if !h.Ejected() {
			t.Fatalf("ejection %d: not ejected", n+1)
		}
		clock.Advance(want - 10*time.Second)
		if !h.Ejected() {
			t.Fatalf("ejection %d: back after %v, want %v", n+1, want-10*time.Second, want)
		}
		clock.Advance(10 * time.Second)
		if h.Ejected() {
			t.Fatalf("ejection %d: still ejected after %v", n+1, want)
		}
		if clock.pending() != 1 {
			t.Fatalf("%d timers armed, want 1", clock.pending())
		}
	}

	// Healthy for two whole intervals: the multiplier drops from 3 to 1, so
	// the next ejection lasts 2*30s.
	clock.Advance(20 * time.Second)
	send(h, repeat(Status(500), 5)...)
	clock.Advance(50 * time.Second)
	if !h.Ejected() {
		t.Fatal("back after 50s, want 60s")
	}
	clock.Advance(10 * time.Second)
	if h.Ejected() {
		t.Fatal("still ejected after 60s")
	}
}

func TestEjectionJitter(t *testing.T) {
	clock := newFakeClock()
	m := newTestManager(t, clock, 3)
	m.Update(snapshot(odCluster(4, func(o *xds.OutlierDetection) {
		o.MaxEjectionPercent = 100
		o.Interval = time.Second
		o.MaxEjectionTimeJitter = 10 * time.Second
	})))
	h := m.Cluster("c").Hosts()[0]
	send(h, repeat(Status(500), 5)...)
	jitter := h.s.ejectionJitter
	if jitter < 0 || jitter > 10*time.Second || jitter%time.Millisecond != 0 {
		t.Fatalf("jitter %v, want whole milliseconds within 0-10s", jitter)
	}
	back := (30*time.Second + jitter + time.Second - 1).Truncate(time.Second)
	clock.Advance(back - time.Second)
	if !h.Ejected() {
		t.Fatalf("back before 30s + jitter %v", jitter)
	}
	clock.Advance(time.Second)
	if h.Ejected() {
		t.Fatalf("still ejected after 30s + jitter %v", jitter)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name    string
		hosts   int
		percent uint32
		always  bool
		want    int
	}{
		{"10% of 10 hosts", 10, 10, false, 1},
		{"20% of 10 hosts", 10, 20, false, 2},
		{"10% of 5 hosts is less than one", 5, 10, false, 0},
		{"always_eject_one_host", 5, 10, true, 1},
		{"always_eject_one_host still caps the rest", 10, 20, true, 2},
		{"100%", 4, 100, false, 4},
		{"0%", 4, 0, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := clusterOf(t, odCluster(tc.hosts, func(o *xds.OutlierDetection) {
				o.MaxEjectionPercent = tc.percent
				o.AlwaysEjectOneHost = tc.always
			}))
			for _, h := range c.Hosts() {
				send(h, repeat(Status(500), 5)...)
			}
			if got := len(ejectedHosts(c)); got != tc.want {
				t.Errorf("%d hosts ejected, want %d", got, tc.want)
			}
			// The refused ejections restarted their counts: five more 5xx
			// ask again, and are refused again.
			for _, h := range c.Hosts() {
				send(h, repeat(Status(500), 5)...)
			}
			if got := len(ejectedHosts(c)); got != tc.want {
				t.Errorf("after a second round, %d hosts ejected, want %d", got, tc.want)
			}
		})
	}
}

func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		threshold *uint32
		eject     int
		panic     bool
		picked    []int // the hosts that may be picked
	}{
		{"one of four ejected", nil, 1, false, []int{1, 2, 3}},
		{"half ejected is not below 50%", nil, 2, false, []int{2, 3}},
		{"three of four: panic uses all", nil, 3, true, []int{0, 1, 2, 3}},
		{"everything ejected: panic", nil, 4, true, []int{0, 1, 2, 3}},
		{"istiod's 0% disables panic", ptr[uint32](0), 3, false, []int{3}},
		{"0% with everything ejected: no host", ptr[uint32](0), 4, false, nil},
		{"80%: 3 of 4 healthy is fully available", ptr[uint32](80), 1, false, []int{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newTestManager(t, clock, 1)
			cl := odCluster(4, func(o *xds.OutlierDetection) { o.MaxEjectionPercent = 100 })
			if tc.threshold != nil {
				cl.CommonLB = &xds.CommonLBConfig{HealthyPanicThreshold: *tc.threshold}
			}
			m.Update(snapshot(cl))
			c := m.Cluster("c")
			for _, h := range c.Hosts()[:tc.eject] {
				send(h, repeat(Status(500), 5)...)
			}
			if got := len(ejectedHosts(c)); got != tc.eject {
				t.Fatalf("%d ejected, want %d", got, tc.eject)
			}
			if c.Panic() != tc.panic {
				t.Errorf("Panic() = %v, want %v", c.Panic(), tc.panic)
			}
			got := counts(c, 400, nil)
			var picked []int
			for i, n := range got {
				if i >= 0 && n > 0 {
					picked = append(picked, i)
				}
			}
			slices.Sort(picked)
			if !slices.Equal(picked, tc.picked) {
				t.Errorf("picked hosts %v, want %v", picked, tc.picked)
			}
			if tc.picked == nil && got[-1] != 400 {
				t.Errorf("want nil from every pick, got %v", got)
			}
			clock.Advance(30 * time.Second)
			if c.Panic() || len(ejectedHosts(c)) != 0 {
				t.Errorf("after the ejections ended: panic %v, ejected %v", c.Panic(), ejectedHosts(c))
			}
		})
	}
}

func TestOutlierStateSurvivesUpdate(t *testing.T) {
	clock := newFakeClock()
	m := newTestManager(t, clock, 1)
	od := func(o *xds.OutlierDetection) { o.MaxEjectionPercent = 100 }
	m.Update(snapshot(odCluster(4, od)))
	c := m.Cluster("c")
	send(c.Hosts()[0], repeat(Status(500), 5)...)
	send(c.Hosts()[1], repeat(Status(500), 4)...)
	clock.Advance(20 * time.Second)

	// A new snapshot with the same hosts and one more.
	m.Update(snapshot(odCluster(5, od)))
	if m.Cluster("c") != c {
		t.Fatal("Update replaced the cluster state")
	}
	if got := ejectedHosts(c); !slices.Equal(got, []int{0}) {
		t.Fatalf("ejected %v after Update, want [0]", got)
	}
	if got := counts(c, 200, nil); got[0] != 0 {
		t.Errorf("ejected host picked %d times after Update", got[0])
	}
	send(c.Hosts()[1], Status(500)) // the fifth in a row, across the reload
	if got := ejectedHosts(c); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("ejected %v, want [0 1]: the count of host 1 was lost", got)
	}
	clock.Advance(10 * time.Second) // 30s since host 0's ejection
	if got := ejectedHosts(c); !slices.Equal(got, []int{1}) {
		t.Fatalf("ejected %v, want [1]: host 0's ejection time was lost", got)
	}

	// A host that leaves and comes back starts afresh.
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(5)[2:], OutlierDetection: odCluster(1, od).OutlierDetection}))
	m.Update(snapshot(odCluster(5, od)))
	if got := ejectedHosts(c); len(got) != 0 {
		t.Fatalf("ejected %v after host 1 left and came back, want none", got)
	}

	// Without outlier detection, nothing is ejected and no timer runs.
	send(c.Hosts()[3], repeat(Status(500), 5)...)
	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(5)}))
	if got := ejectedHosts(c); len(got) != 0 {
		t.Errorf("ejected %v without outlier detection", got)
	}
	if clock.pending() != 0 {
		t.Errorf("%d timers armed without outlier detection", clock.pending())
	}
	send(c.Hosts()[3], repeat(Status(500), 10)...)
	if got := ejectedHosts(c); len(got) != 0 {
		t.Errorf("ejected %v without outlier detection", got)
	}
}

func TestIntervalChangeRearms(t *testing.T) {
	clock := newFakeClock()
	m := newTestManager(t, clock, 1)
	m.Update(snapshot(odCluster(4, func(o *xds.OutlierDetection) { o.MaxEjectionPercent = 100 })))
	h := m.Cluster("c").Hosts()[0]
	send(h, repeat(Status(500), 5)...)
	m.Update(snapshot(odCluster(4, func(o *xds.OutlierDetection) {
		o.MaxEjectionPercent, o.Interval = 100, time.Second
	})))
	if clock.pending() != 1 {
		t.Fatalf("%d timers armed, want 1", clock.pending())
	}
	clock.Advance(30 * time.Second)
	if h.Ejected() {
		t.Error("still ejected after 30s with a 1s interval")
	}
}

func TestSuccessRateEjection(t *testing.T) {
	tests := []struct {
		name      string
		od        func(*xds.OutlierDetection)
		successes []int // of 100 requests per host
		local     bool  // send local-origin failures instead of 5xx
		ejected   []int
	}{
		{"below mean - 1.9 stdev", nil, []int{50, 100, 100, 100, 100}, false, []int{0}},
		// Mean 92, stdev 7.48: the threshold is 77.8 with the default
		// factor (1.9), 84.5 with 1.0.
		{"within the spread", nil, []int{80, 100, 90, 100, 90}, false, nil},
		{"stdev factor from config", func(o *xds.OutlierDetection) { o.SuccessRateStdevFactor = 1000 }, []int{80, 100, 90, 100, 90}, false, []int{0}},
		{"too few hosts with volume", func(o *xds.OutlierDetection) { o.SuccessRateMinimumHosts = 6 }, []int{50, 100, 100, 100, 100}, false, nil},
		{"not enforced", func(o *xds.OutlierDetection) { o.EnforcingSuccessRate = 0 }, []int{50, 100, 100, 100, 100}, false, nil},
		{"local origin when split", func(o *xds.OutlierDetection) { o.SplitExternalLocalOriginErrors = true }, []int{50, 100, 100, 100, 100}, true, []int{0}},
		{"local origin not enforced", func(o *xds.OutlierDetection) {
			o.SplitExternalLocalOriginErrors, o.EnforcingLocalOriginSuccessRate = true, 0
		}, []int{50, 100, 100, 100, 100}, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newTestManager(t, clock, 1)
			m.Update(snapshot(odCluster(5, func(o *xds.OutlierDetection) {
				o.MaxEjectionPercent = 100
				if tc.od != nil {
					tc.od(o)
				}
			})))
			c := m.Cluster("c")
			fail := Status(500)
			if tc.local {
				fail = ConnectFailed
			}
			for i, h := range c.Hosts() {
				// Failures spread evenly, so that no run of them reaches a
				// consecutive threshold.
				fails := 100 - tc.successes[i]
				for j := range 100 {
					if (j+1)*fails/100 != j*fails/100 {
						send(h, fail)
					} else {
						send(h, Status(200))
					}
				}
			}
			if got := ejectedHosts(c); len(got) != 0 {
				t.Fatalf("ejected %v before the interval", got)
			}
			clock.Advance(10 * time.Second)
			if got := ejectedHosts(c); !slices.Equal(got, tc.ejected) {
				t.Errorf("ejected %v, want %v", got, tc.ejected)
			}
			// The next interval has no requests: nothing more happens.
			clock.Advance(10 * time.Second)
			if got := ejectedHosts(c); !slices.Equal(got, tc.ejected) {
				t.Errorf("after an idle interval, ejected %v, want %v", got, tc.ejected)
			}
		})
	}
}

func TestFailurePercentageEjection(t *testing.T) {
	clock := newFakeClock()
	m := newTestManager(t, clock, 1)
	m.Update(snapshot(odCluster(5, func(o *xds.OutlierDetection) {
		o.MaxEjectionPercent = 100
		o.EnforcingSuccessRate = 0
		o.EnforcingFailurePercentage = 100
		o.Consecutive5xx = 1000
	})))
	c := m.Cluster("c")
	failures := []int{90, 85, 84, 0, 0} // of 100; the threshold is 85%
	for i, h := range c.Hosts() {
		send(h, cat(repeat(Status(503), failures[i]), repeat(Status(200), 100-failures[i]))...)
	}
	clock.Advance(10 * time.Second)
	if got := ejectedHosts(c); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("ejected %v, want [0 1]", got)
	}
}

func TestRemovedClusterStopsItsTimer(t *testing.T) {
	clock := newFakeClock()
	m := newTestManager(t, clock, 1)
	m.Update(snapshot(odCluster(2, nil), &xds.Cluster{Name: "other", Endpoints: equal(1)}))
	if clock.pending() != 1 {
		t.Fatalf("%d timers, want 1", clock.pending())
	}
	h := m.Cluster("c").Hosts()[0]
	m.Update(snapshot(&xds.Cluster{Name: "other", Endpoints: equal(1)}))
	if m.Cluster("c") != nil {
		t.Fatal("removed cluster still known")
	}
	if clock.pending() != 0 {
		t.Fatalf("%d timers after the cluster left, want 0", clock.pending())
	}
	send(h, repeat(Status(500), 10)...) // a request in flight across the removal
	if h.Ejected() {
		t.Error("host of a removed cluster ejected")
	}
}

func ptr[T any](v T) *T { return &v }
