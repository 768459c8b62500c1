package rbac

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/filters"
)

// testStats is the registry the tests' filters count on, as the waypoint's
// would.
var testStats = prometheus.NewRegistry()

// testContext is the build context of the tests' filters: counters on
// testStats.
func testContext() filters.BuildContext {
	return filters.BuildContext{Name: Name, Stats: filters.NewScope(testStats)}
}

// counterValue reads a counter of testStats by name and labels (prefix,
// policy).
func counterValue(t *testing.T, name, prefix, policy string) float64 {
	t.Helper()
	mfs, err := testStats.Gather()
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
