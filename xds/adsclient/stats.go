package adsclient

import (
	"sync/atomic"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// The xDS client's stats, in the process's registry (served at the admin's
// /stats/prometheus and on the metrics port), under the names Envoy gives
// them in its Prometheus output, which Istio's dashboards read:
//
//	envoy_cluster_manager_cds_update_success     CDS responses accepted (ACK)    cluster_manager.cds.update_success
//	envoy_cluster_manager_cds_update_rejected    CDS responses refused (NACK)    cluster_manager.cds.update_rejected
//	envoy_listener_manager_lds_update_success    LDS responses accepted          listener_manager.lds.update_success
//	envoy_listener_manager_lds_update_rejected   LDS responses refused           listener_manager.lds.update_rejected
//	envoy_control_plane_connected_state          1 while an ADS stream is up, else 0   control_plane.connected_state
//
// Envoy counts EDS and RDS per cluster and per route configuration
// (cluster.NAME.update_rejected, http.PREFIX.rds.NAME.update_rejected); a
// refused response here is refused whole, of no one cluster or route
// configuration, so every type's refusals are counted, by type URL, in
//
//	waypoint_xds_update_rejected_total{type_url}
//
// The counters are the process's, summed over its clients (one in a
// waypoint), as Envoy's stats are.
var (
	cdsSuccess  = stats.NewCounter(prometheus.CounterOpts{Name: "envoy_cluster_manager_cds_update_success", Help: "CDS responses accepted (ACKed)."})
	cdsRejected = stats.NewCounter(prometheus.CounterOpts{Name: "envoy_cluster_manager_cds_update_rejected", Help: "CDS responses refused (NACKed)."})
	ldsSuccess  = stats.NewCounter(prometheus.CounterOpts{Name: "envoy_listener_manager_lds_update_success", Help: "LDS responses accepted (ACKed)."})
	ldsRejected = stats.NewCounter(prometheus.CounterOpts{Name: "envoy_listener_manager_lds_update_rejected", Help: "LDS responses refused (NACKed)."})
	rejected    = stats.NewCounterVec(prometheus.CounterOpts{Name: "waypoint_xds_update_rejected_total",
		Help: "xDS responses refused (NACKed), by resource type URL."}, []string{"type_url"})

	// liveStreams counts the ADS streams up in the process.
	liveStreams atomic.Int64
)

func init() {
	for _, t := range typeOrder {
		rejected.WithLabelValues(t) // present at 0 before the first refusal
	}
	stats.NewGaugeFunc(prometheus.GaugeOpts{Name: "envoy_control_plane_connected_state",
		Help: "1 while the ADS stream to the control plane is up, 0 otherwise."}, func() float64 {
		if liveStreams.Load() > 0 {
			return 1
		}
		return 0
	})
}

// countUpdate counts a response of type t accepted (ACK) or refused (NACK).
func countUpdate(t string, accepted bool) {
	if !accepted {
		rejected.WithLabelValues(t).Inc()
	}
	switch t {
	case resourcev3.ClusterType:
		if accepted {
			cdsSuccess.Inc()
		} else {
			cdsRejected.Inc()
		}
	case resourcev3.ListenerType:
		if accepted {
			ldsSuccess.Inc()
		} else {
			ldsRejected.Inc()
		}
	}
}
