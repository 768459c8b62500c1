package lb

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// newSlowStart returns ROUND_ROBIN or LEAST_REQUEST with Envoy's slow start
// (a cluster's slow_start_config): Envoy's EDF schedule where a picked host
// is rescheduled with its weight at that moment, the host's weight (for
// least request, weight/(active+1)^bias) scaled while the host is younger
// than the window by max(min_weight_percent, (age/window)^(1/aggression)),
// age counted in milliseconds from 1. A host's age runs from when the
// cluster first had it (its live state), so a reload does not restart it.
// Once every host is past its window, as Envoy it picks as the policy does
// without slow start (after, the picker of the same hosts).
func newSlowStart(hosts []*Host, cfg config, now func() time.Time, after picker) picker {
	p := &slowStart{hosts: hosts, ss: cfg.slowStart, now: now, after: after}
	for _, h := range hosts {
		if h.s.joined.After(p.latest) {
			p.latest = h.s.joined
		}
	}
	if cfg.policy == xds.LBPolicyLeastRequest {
		p.bias = cfg.leastRequest.ActiveRequestBias
		p.leastRequest = true
	}
	p.at = now()
	p.s.heap = make([]dynEntry, 0, len(hosts))
	for i := range hosts {
		p.s.add(uint32(i), p.weight(uint32(i)))
	}
	return p
}

// slowStart is the slow-start picker.
type slowStart struct {
	hosts        []*Host
	ss           xds.SlowStartConfig
	now          func() time.Time
	leastRequest bool
	bias         float64
	latest       time.Time   // when the youngest host joined
	after        picker      // once every host is past its window
	over         atomic.Bool // every host is past its window

	mu sync.Mutex // guards s and at
	s  dynamicEDF
	at time.Time // the time of the pick being made
}

func (p *slowStart) pick(hash uint64, attempt int) *Host {
	if p.over.Load() {
		return p.after.pick(hash, attempt)
	}
	p.mu.Lock()
	p.at = p.now()
	if p.at.Sub(p.latest) >= p.ss.Window {
		p.over.Store(true)
		p.mu.Unlock()
		return p.after.pick(hash, attempt)
	}
	i := p.s.next(p.weight)
	p.mu.Unlock()
	return p.hosts[i]
}

// weight is host i's weight at p.at.
func (p *slowStart) weight(i uint32) float64 {
	h := p.hosts[i]
	w := float64(h.Weight)
	if p.leastRequest {
		switch p.bias {
		case 0:
		case 1:
			w /= float64(h.s.active.Load() + 1)
		default:
			w /= math.Pow(float64(h.s.active.Load()+1), p.bias)
		}
	}
	return w * slowStartFactor(p.ss, p.at.Sub(h.s.joined))
}

// slowStartFactor is the scale of a host's weight at age: 1 past the window.
func slowStartFactor(ss xds.SlowStartConfig, age time.Duration) float64 {
	if age >= ss.Window {
		return 1
	}
	t := float64(max(age.Milliseconds(), 1)) / float64(ss.Window.Milliseconds())
	if ss.Aggression != 1 {
		t = math.Pow(t, 1/ss.Aggression)
	}
	return max(t, ss.MinWeightPercent/100)
}
