package lb

import (
	"math"
	"sync"

	"github.com/gowaypoint/waypoint/xds"
)

// newLeastRequest returns LEAST_REQUEST over hosts. With equal weights it
// compares cfg.ChoiceCount random hosts and takes the one with the fewest
// active requests (the first of equals), as Envoy's N_CHOICES. With unequal
// weights it runs Envoy's EDF schedule with the dynamic weight
// weight/(active+1)^ActiveRequestBias, recomputed for a host each time it
// is picked.
func newLeastRequest(hosts []*Host, cfg xds.LeastRequestConfig, rnd func() uint64) picker {
	if equalWeights(hosts) {
		return &nChoices{hosts: hosts, choices: max(int(cfg.ChoiceCount), 1), rnd: rnd}
	}
	w := &weightedLeastRequest{hosts: hosts, bias: cfg.ActiveRequestBias}
	w.s.heap = make([]dynEntry, 0, len(hosts))
	for i := range hosts {
		w.s.add(uint32(i), w.weight(uint32(i)))
	}
	return w
}

// nChoices is least request by random sampling.
type nChoices struct {
	hosts   []*Host
	choices int
	rnd     func() uint64
}

func (p *nChoices) pick(uint64, int) *Host {
	n := uint64(len(p.hosts))
	best := p.hosts[below(p.rnd(), n)]
	least := best.s.active.Load()
	for range p.choices - 1 {
		h := p.hosts[below(p.rnd(), n)]
		if a := h.s.active.Load(); a < least {
			best, least = h, a
		}
	}
	return best
}

// weightedLeastRequest is least request by dynamic-weight EDF.
type weightedLeastRequest struct {
	hosts []*Host
	bias  float64

	mu sync.Mutex // guards s
	s  dynamicEDF
}

func (p *weightedLeastRequest) pick(uint64, int) *Host {
	p.mu.Lock()
	i := p.s.next(p.weight)
	p.mu.Unlock()
	return p.hosts[i]
}

// weight is Envoy's weight/(active+1)^bias.
func (p *weightedLeastRequest) weight(i uint32) float64 {
	h := p.hosts[i]
	w := float64(h.Weight)
	switch p.bias {
	case 0:
		return w
	case 1:
		return w / float64(h.s.active.Load()+1)
	}
	return w / math.Pow(float64(h.s.active.Load()+1), p.bias)
}
