package lb

import (
	"math"
	"time"

	"github.com/gowaypoint/waypoint/xds"
)

// ejection is why a host is ejected; each has its enforcing percentage.
type ejection int

const (
	eject5xx ejection = iota
	ejectGateway
	ejectLocalOrigin
	ejectSuccessRate
	ejectSuccessRateLocal
	ejectFailurePercentage
	ejectFailurePercentageLocal
)

func (k ejection) enforcing(od *xds.OutlierDetection) uint32 {
	switch k {
	case eject5xx:
		return od.EnforcingConsecutive5xx
	case ejectGateway:
		return od.EnforcingConsecutiveGatewayFailure
	case ejectLocalOrigin:
		return od.EnforcingConsecutiveLocalOriginFailure
	case ejectSuccessRate:
		return od.EnforcingSuccessRate
	case ejectSuccessRateLocal:
		return od.EnforcingLocalOriginSuccessRate
	case ejectFailurePercentage:
		return od.EnforcingFailurePercentage
	default:
		return od.EnforcingFailurePercentageLocalOrigin
	}
}

// record counts one result of a request to s, as Envoy's
// DetectorHostMonitorImpl::putResult. Without the local/external split,
// local-origin failures become HTTP statuses; with it they have their own
// counters, and an HTTP status also tells that the connection worked.
func (c *ClusterState) record(s *hostState, od *xds.OutlierDetection, r Result) {
	if od.SplitExternalLocalOriginErrors {
		switch r {
		case ConnectFailed, Reset, Timeout:
			c.localOrigin(s, od, false)
			return
		case Connected:
			c.localOrigin(s, od, true)
			return
		}
		c.localOrigin(s, od, true)
	}
	var code int
	switch r {
	case ConnectFailed, Reset:
		code = 503
	case Timeout:
		code = 504
	case Connected:
		code = 200
	default:
		code, _ = r.Code()
	}
	c.httpStatus(s, od, code)
}

// httpStatus counts an HTTP status: a 5xx extends the run of 5xx, a 502,
// 503 or 504 that of gateway failures; anything else ends both. A run
// reaching its threshold asks for an ejection (exactly once: the counter
// equals the threshold on one increment only).
func (c *ClusterState) httpStatus(s *hostState, od *xds.OutlierDetection, code int) {
	s.external.total.Add(1)
	if code >= 500 && code <= 599 {
		if code == 502 || code == 503 || code == 504 {
			if s.consecutiveGateway.Add(1) == od.ConsecutiveGatewayFailure {
				c.onConsecutive(s, ejectGateway)
			}
		} else if s.consecutiveGateway.Load() != 0 {
			s.consecutiveGateway.Store(0)
		}
		if s.consecutive5xx.Add(1) == od.Consecutive5xx {
			c.onConsecutive(s, eject5xx)
		}
		return
	}
	s.external.success.Add(1)
	if s.consecutive5xx.Load() != 0 {
		s.consecutive5xx.Store(0)
	}
	if s.consecutiveGateway.Load() != 0 {
		s.consecutiveGateway.Store(0)
	}
}

// localOrigin counts a local-origin success or failure (split mode only).
func (c *ClusterState) localOrigin(s *hostState, od *xds.OutlierDetection, ok bool) {
	s.local.total.Add(1)
	if ok {
		s.local.success.Add(1)
		if s.consecutiveLocal.Load() != 0 {
			s.consecutiveLocal.Store(0)
		}
		return
	}
	if s.consecutiveLocal.Add(1) == od.ConsecutiveLocalOriginFailure {
		c.onConsecutive(s, ejectLocalOrigin)
	}
}

// onConsecutive handles a run of failures reaching its threshold, on the
// goroutine that ended the request: eject the host if allowed, then restart
// the run, as Envoy does whether or not the host was ejected.
func (c *ClusterState) onConsecutive(s *hostState, kind ejection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	od := c.outlier.Load()
	if c.closed || s.removed || od == nil || s.ejected.Load() {
		return
	}
	if c.ejectLocked(s, od, kind) {
		c.rebuildLocked()
	}
	switch kind {
	case eject5xx:
		s.consecutive5xx.Store(0)
	case ejectGateway:
		s.consecutiveGateway.Store(0)
	case ejectLocalOrigin:
		s.consecutiveLocal.Store(0)
	}
}

// ejectLocked ejects s if max_ejection_percent allows one more ejected host
// (or always_eject_one_host and none is) and the enforcing percentage of
// kind says so, and reports whether it did. The caller rebuilds.
func (c *ClusterState) ejectLocked(s *hostState, od *xds.OutlierDetection, kind ejection) bool {
	ejected := 0
	for _, o := range c.order {
		if o.ejected.Load() {
			ejected++
		}
	}
	pct := 100 * float64(ejected+1) / float64(len(c.order))
	if pct > float64(od.MaxEjectionPercent) && !(od.AlwaysEjectOneHost && ejected == 0) {
		return false
	}
	if e := kind.enforcing(od); e < 100 && c.m.rnd()%100 >= uint64(e) {
		return false
	}
	s.ejected.Store(true)
	s.lastEjection = c.m.clock.Now()
	s.ejectionJitter = 0
	if ms := uint64(od.MaxEjectionTimeJitter / time.Millisecond); ms > 0 {
		s.ejectionJitter = time.Duration(c.m.rnd()%(ms+1)) * time.Millisecond
	}
	if time.Duration(s.backoff)*od.BaseEjectionTime < od.MaxEjectionTime+od.BaseEjectionTime {
		s.backoff++
	}
	return true
}

// unejectLocked returns s to service and restarts its runs of failures.
func (c *ClusterState) unejectLocked(s *hostState, now time.Time) {
	s.ejected.Store(false)
	s.consecutive5xx.Store(0)
	s.consecutiveGateway.Store(0)
	s.consecutiveLocal.Store(0)
	s.lastUneject = now
}

// sweepLocked is one interval of Envoy's DetectorImpl::onIntervalTimer:
// return hosts whose ejection is over, close the interval's success-rate
// counts and eject by success rate and failure percentage, then shorten
// the next ejection of hosts healthy for a whole interval. It reports
// whether any host changed state.
func (c *ClusterState) sweepLocked(od *xds.OutlierDetection, now time.Time) bool {
	changed := false
	external := make([]rate, len(c.order))
	local := make([]rate, len(c.order))
	for i, s := range c.order {
		if s.ejected.Load() {
			d := min(time.Duration(s.backoff)*od.BaseEjectionTime, od.MaxEjectionTime) + s.ejectionJitter
			if now.Sub(s.lastEjection) >= d {
				c.unejectLocked(s, now)
				changed = true
			}
		}
		external[i] = rate{s: s, total: s.external.total.Swap(0), success: s.external.success.Swap(0)}
		local[i] = rate{s: s, total: s.local.total.Swap(0), success: s.local.success.Swap(0)}
	}
	if c.rateEjectionsLocked(od, external, ejectSuccessRate, ejectFailurePercentage) {
		changed = true
	}
	if od.SplitExternalLocalOriginErrors && c.rateEjectionsLocked(od, local, ejectSuccessRateLocal, ejectFailurePercentageLocal) {
		changed = true
	}
	for _, s := range c.order {
		if !s.ejected.Load() && s.backoff > 0 && !s.lastUneject.IsZero() && now.Sub(s.lastUneject) >= od.Interval {
			s.backoff--
		}
	}
	return changed
}

// rate is one host's requests and successes over the last interval.
type rate struct {
	s              *hostState
	total, success uint64
}

// rateEjectionsLocked is Envoy's processSuccessRateEjections over one
// interval's counts: success rate (a host below mean - stdev*factor among
// enough hosts with enough requests) and failure percentage (a host at or
// above the threshold). It reports whether it ejected a host.
func (c *ClusterState) rateEjectionsLocked(od *xds.OutlierDetection, rates []rate, sr, fp ejection) bool {
	n := uint32(len(c.order))
	if n < od.SuccessRateMinimumHosts && n < od.FailurePercentageMinimumHosts {
		return false
	}
	type hostRate struct {
		s    *hostState
		rate float64
	}
	var srHosts, fpHosts []hostRate
	var sum float64
	for _, r := range rates {
		if r.s.ejected.Load() || r.total == 0 {
			continue
		}
		v := 100 * float64(r.success) / float64(r.total)
		if r.total >= uint64(od.SuccessRateRequestVolume) {
			srHosts = append(srHosts, hostRate{r.s, v})
			sum += v
		}
		if r.total >= uint64(od.FailurePercentageRequestVolume) {
			fpHosts = append(fpHosts, hostRate{r.s, v})
		}
	}
	changed := false
	if len(srHosts) > 0 && len(srHosts) >= int(od.SuccessRateMinimumHosts) {
		mean := sum / float64(len(srHosts))
		var variance float64
		for _, h := range srHosts {
			variance += (h.rate - mean) * (h.rate - mean)
		}
		stdev := math.Sqrt(variance / float64(len(srHosts)))
		threshold := mean - float64(od.SuccessRateStdevFactor)/1000*stdev
		for _, h := range srHosts {
			if h.rate < threshold && !h.s.ejected.Load() && c.ejectLocked(h.s, od, sr) {
				changed = true
			}
		}
	}
	if len(fpHosts) > 0 && len(fpHosts) >= int(od.FailurePercentageMinimumHosts) {
		for _, h := range fpHosts {
			if 100-h.rate >= float64(od.FailurePercentageThreshold) && !h.s.ejected.Load() && c.ejectLocked(h.s, od, fp) {
				changed = true
			}
		}
	}
	return changed
}
