package lb

import (
	"math"
	"testing"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// TestSlowStart checks Envoy's slow start on ROUND_ROBIN and LEAST_REQUEST: a host that joins
// a cluster gets a share growing with its age, max(min_weight_percent, (age/window)^(1/aggression))
// of its weight, until the window has passed; the hosts the cluster had from the start all
// started together and share evenly.
func TestSlowStart(t *testing.T) {
	const n = 3000
	for _, tc := range []struct {
		name   string
		policy xds.LBPolicy
		ss     xds.SlowStartConfig
		age    time.Duration // of the new host when picking
		want   float64       // its share of picks
	}{
		{"round robin, just joined: the minimum weight", xds.LBPolicyRoundRobin, xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}, 0, 0.1 / 1.1},
		{"round robin, half way", xds.LBPolicyRoundRobin, xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}, 5 * time.Second, 0.5 / 1.5},
		{"round robin, past the window", xds.LBPolicyRoundRobin, xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}, 11 * time.Second, 0.5},
		{"aggression 2 ramps faster", xds.LBPolicyRoundRobin, xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 2, MinWeightPercent: 10}, 2500 * time.Millisecond, 0.5 / 1.5},
		{"a higher minimum weight", xds.LBPolicyRoundRobin, xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 40}, time.Second, 0.4 / 1.4},
		{"least request, half way", xds.LBPolicyLeastRequest, xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}, 5 * time.Second, 0.5 / 1.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newTestManager(t, clock, 1)
			cl := &xds.Cluster{Name: "c", LBPolicy: tc.policy, Endpoints: equal(1), SlowStart: &tc.ss}
			if tc.policy == xds.LBPolicyLeastRequest {
				cl.LeastRequest = &xds.DefaultLeastRequest
			}
			m.Update(snapshot(cl))
			clock.Advance(time.Minute)
			grown := *cl
			grown.Endpoints = equal(2)
			m.Update(snapshot(&grown))
			clock.Advance(tc.age)
			got := counts(m.Cluster("c"), n, nil)
			if share := float64(got[1]) / n; math.Abs(share-tc.want) > 0.02 {
				t.Errorf("the new host's share %.3f, want %.3f (%v)", share, tc.want, got)
			}
		})
	}
	t.Run("hosts of the cluster's start share evenly", func(t *testing.T) {
		clock := newFakeClock()
		m := newTestManager(t, clock, 1)
		m.Update(snapshot(&xds.Cluster{Name: "c", Endpoints: equal(2), SlowStart: &xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}}))
		clock.Advance(time.Second)
		got := counts(m.Cluster("c"), 1000, nil)
		if got[0] != 500 || got[1] != 500 {
			t.Errorf("%v, want 500 each", got)
		}
	})
	t.Run("not for other policies", func(t *testing.T) {
		if got := slowStartOf(&xds.Cluster{LBPolicy: xds.LBPolicyRandom, SlowStart: &xds.SlowStartConfig{Window: time.Second}}); got.Window != 0 {
			t.Errorf("slow start on RANDOM: %+v", got)
		}
	})
}

func TestSlowStartFactor(t *testing.T) {
	ss := xds.SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}
	for _, tc := range []struct {
		age  time.Duration
		want float64
	}{
		{0, 0.1}, {500 * time.Millisecond, 0.1}, {2 * time.Second, 0.2}, {9 * time.Second, 0.9}, {10 * time.Second, 1}, {time.Hour, 1},
	} {
		if got := slowStartFactor(ss, tc.age); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("factor at %v = %v, want %v", tc.age, got, tc.want)
		}
	}
	ss.MinWeightPercent = 0
	if got := slowStartFactor(ss, 0); got != 0.0001 {
		t.Errorf("factor of a host 0 ms old without a minimum = %v, want 1 ms / 10 s", got)
	}
}
