package rbac

import (
	"testing"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// counterValue reads a counter of the stats registry by name and labels
// (prefix, policy).
func counterValue(t *testing.T, name, prefix, policy string) float64 {
	t.Helper()
	mfs, err := stats.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["prefix"] == prefix && l["policy"] == policy {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
