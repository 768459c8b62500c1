package overload

import "github.com/gowaypoint/waypoint/xds"

// value is a trigger's state for pressure p, as Envoy computes it.
func value(t xds.OverloadTrigger, p float64) float64 {
	if !t.Scaled {
		if p >= t.Threshold {
			return 1
		}
		return 0
	}
	switch {
	case p < t.Scaling:
		return 0
	case p >= t.Saturation:
		return 1
	}
	return (p - t.Scaling) / (t.Saturation - t.Scaling)
}
