package lb

import (
	"testing"

	"github.com/gowaypoint/waypoint/xds"
)

func TestBreakersRefuseBeyondEachThreshold(t *testing.T) {
	th := xds.Thresholds{MaxConnections: 2, MaxPendingRequests: 3, MaxRequests: 1, MaxRetries: 0}
	for _, tc := range []struct {
		name string
		max  int
		try  func(*Breakers) (func(), bool)
	}{
		{"connections", 2, (*Breakers).TryConnection},
		{"pending", 3, (*Breakers).TryPending},
		{"requests", 1, (*Breakers).TryRequest},
		{"retries", 0, (*Breakers).TryRetry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBreakers(th)
			var releases []func()
			for i := range tc.max {
				release, ok := tc.try(b)
				if !ok {
					t.Fatalf("attempt %d of %d refused", i+1, tc.max)
				}
				releases = append(releases, release)
			}
			for range 2 {
				if _, ok := tc.try(b); ok {
					t.Fatalf("attempt %d allowed beyond the threshold %d", tc.max+1, tc.max)
				}
			}
			if tc.max == 0 {
				return
			}
			releases[0]()
			release, ok := tc.try(b)
			if !ok {
				t.Fatal("refused after a release")
			}
			release()
			for _, r := range releases[1:] {
				r()
			}
			if c, p, r, rt := b.InFlight(); c+p+r+rt != 0 {
				t.Errorf("in flight after all released: %d %d %d %d", c, p, r, rt)
			}
		})
	}
}

func TestBreakersOthersUnaffected(t *testing.T) {
	b := NewBreakers(xds.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1, MaxRetries: 1})
	if _, ok := b.TryRequest(); !ok {
		t.Fatal("first request refused")
	}
	if _, ok := b.TryRequest(); ok {
		t.Fatal("second request allowed")
	}
	for name, try := range map[string]func() (func(), bool){
		"connection": b.TryConnection, "pending": b.TryPending, "retry": b.TryRetry,
	} {
		if _, ok := try(); !ok {
			t.Errorf("%s refused while only requests are full", name)
		}
	}
}

func TestBreakersKeepCountsAcrossUpdates(t *testing.T) {
	m := newTestManager(t, newFakeClock(), 1)
	cl := func(max uint32) *xds.Cluster {
		return &xds.Cluster{Name: "c", Endpoints: equal(1), CircuitBreakers: &xds.Thresholds{
			MaxConnections: max, MaxPendingRequests: max, MaxRequests: max, MaxRetries: max}}
	}
	m.Update(snapshot(cl(2)))
	b := m.Cluster("c").Breakers()
	r1, _ := b.TryRequest()
	r2, _ := b.TryRequest()
	if _, ok := b.TryRequest(); ok {
		t.Fatal("third request allowed at max_requests 2")
	}

	m.Update(snapshot(cl(3)))
	if m.Cluster("c").Breakers() != b {
		t.Fatal("Update replaced the breakers")
	}
	if got := b.Thresholds().MaxRequests; got != 3 {
		t.Fatalf("MaxRequests = %d after Update, want 3", got)
	}
	r3, ok := b.TryRequest()
	if !ok {
		t.Fatal("third request refused at max_requests 3")
	}
	if _, ok := b.TryRequest(); ok {
		t.Fatal("fourth request allowed: the two in flight were forgotten")
	}

	m.Update(snapshot(cl(1))) // lowered below what is in flight
	r1()
	r2()
	if _, ok := b.TryRequest(); ok {
		t.Fatal("request allowed with 1 in flight at max_requests 1")
	}
	r3()
	if _, ok := b.TryRequest(); !ok {
		t.Fatal("request refused with none in flight")
	}

	m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(1)}))
	if got := b.Thresholds(); got != xds.DefaultThresholds {
		t.Errorf("thresholds %+v after circuit_breakers went away, want Envoy's defaults", got)
	}
}

func TestBreakersUnlimited(t *testing.T) {
	u := xds.UnlimitedThreshold
	b := NewBreakers(xds.Thresholds{MaxConnections: u, MaxPendingRequests: u, MaxRequests: u, MaxRetries: u})
	for range 10_000 {
		if _, ok := b.TryRetry(); !ok {
			t.Fatal("retry refused under istiod's unlimited threshold")
		}
	}
}

func TestBreakersAddConnectionPastTheLimit(t *testing.T) {
	b := NewBreakers(xds.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1, MaxRetries: 1})
	first, ok := b.TryConnection()
	if !ok {
		t.Fatal("first connection refused")
	}
	forced := b.AddConnection()
	if c, _, _, _ := b.InFlight(); c != 2 {
		t.Errorf("%d connections counted, want 2 (one past the limit)", c)
	}
	first()
	if _, ok := b.TryConnection(); ok {
		t.Error("a connection allowed while the forced one holds the only slot")
	}
	forced()
	if c, _, _, _ := b.InFlight(); c != 0 {
		t.Errorf("%d connections after both released", c)
	}
}

func TestBreakersRetryBudget(t *testing.T) {
	for _, tc := range []struct {
		name             string
		budget           xds.RetryBudget
		requests, pendng int
		want             int // retries allowed at once
	}{
		{"the minimum with nothing in flight", xds.RetryBudget{Percent: 20, MinConcurrency: 3}, 0, 0, 3},
		{"20% of 50 requests", xds.RetryBudget{Percent: 20, MinConcurrency: 3}, 50, 0, 10},
		{"pending requests count", xds.RetryBudget{Percent: 20, MinConcurrency: 3}, 30, 20, 10},
		{"the share truncated, below the minimum", xds.RetryBudget{Percent: 20, MinConcurrency: 3}, 19, 0, 3},
		{"no minimum, nothing in flight: none", xds.RetryBudget{Percent: 50}, 0, 0, 0},
		{"no minimum", xds.RetryBudget{Percent: 50}, 5, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// max_retries 1 is ignored with a budget.
			b := NewBreakers(xds.Thresholds{MaxConnections: 1000, MaxPendingRequests: 1000, MaxRequests: 1000, MaxRetries: 1, RetryBudget: &tc.budget})
			for range tc.requests {
				if _, ok := b.TryRequest(); !ok {
					t.Fatal("request refused")
				}
			}
			for range tc.pendng {
				if _, ok := b.TryPending(); !ok {
					t.Fatal("pending refused")
				}
			}
			got := 0
			for range 1000 {
				if _, ok := b.TryRetry(); !ok {
					break
				}
				got++
			}
			if got != tc.want {
				t.Errorf("%d retries allowed, want %d", got, tc.want)
			}
		})
	}
	// Without a budget, max_retries.
	b := NewBreakers(xds.Thresholds{MaxRetries: 1})
	if _, ok := b.TryRetry(); !ok {
		t.Fatal("first retry refused")
	}
	if _, ok := b.TryRetry(); ok {
		t.Error("a second retry past max_retries 1")
	}
}
