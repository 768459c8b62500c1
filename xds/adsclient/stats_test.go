package adsclient

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// metricValue reads a counter or gauge of the process's registry by name
// and, for waypoint_xds_update_rejected_total, type URL.
func metricValue(t *testing.T, name, typeURL string) float64 {
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
			if typeURL != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != typeURL) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s %s", name, typeURL)
	return 0
}

// xdsStats are the client's counters at a moment.
type xdsStats struct {
	cdsOK, cdsRejected, ldsOK, ldsRejected, clusterTypeRejected, connected float64
}

func readXDSStats(t *testing.T) xdsStats {
	t.Helper()
	return xdsStats{
		cdsOK:               metricValue(t, "envoy_cluster_manager_cds_update_success", ""),
		cdsRejected:         metricValue(t, "envoy_cluster_manager_cds_update_rejected", ""),
		ldsOK:               metricValue(t, "envoy_listener_manager_lds_update_success", ""),
		ldsRejected:         metricValue(t, "envoy_listener_manager_lds_update_rejected", ""),
		clusterTypeRejected: metricValue(t, "waypoint_xds_update_rejected_total", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
		connected:           metricValue(t, "envoy_control_plane_connected_state", ""),
	}
}

// The names are Envoy's, in the Prometheus text /stats/prometheus serves.
func TestStatsExposition(t *testing.T) {
	rec := httptest.NewRecorder()
	stats.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	body := rec.Body.String()
	for _, line := range []string{
		"# TYPE envoy_cluster_manager_cds_update_rejected counter\nenvoy_cluster_manager_cds_update_rejected ",
		"# TYPE envoy_cluster_manager_cds_update_success counter\nenvoy_cluster_manager_cds_update_success ",
		"# TYPE envoy_listener_manager_lds_update_rejected counter\nenvoy_listener_manager_lds_update_rejected ",
		"# TYPE envoy_listener_manager_lds_update_success counter\nenvoy_listener_manager_lds_update_success ",
		"# TYPE envoy_control_plane_connected_state gauge\nenvoy_control_plane_connected_state 0\n",
		`waypoint_xds_update_rejected_total{type_url="type.googleapis.com/envoy.config.route.v3.RouteConfiguration"} `,
		`waypoint_xds_update_rejected_total{type_url="type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"} `,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/stats/prometheus has no %q", line)
		}
	}
}
