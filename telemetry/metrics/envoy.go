package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/telemetry/stats"
)

// Envoy-style counters operators look for, under Envoy's Prometheus names
// (its stat names with the cluster or listener extracted as a label):
//
//	envoy_cluster_upstream_rq_total{cluster_name}     upstream tries
//	envoy_cluster_upstream_rq_retry{cluster_name}     tries after the first
//	envoy_cluster_upstream_rq_timeout{cluster_name}   tries that timed out
//	envoy_cluster_upstream_cx_active{cluster_name}    upstream connections open (TCP proxy streams and HTTP exchanges in flight)
//	envoy_cluster_upstream_cx_destroy_with_active_rq{cluster_name}         HTTP connections that ended under a request (connection termination, UC)
//	envoy_cluster_upstream_cx_destroy_remote_with_active_rq{cluster_name}  the same, ended by the upstream (all of them: the waypoint counts no local one)
//	envoy_cluster_upstream_rq_pending_failure_eject{cluster_name}         HTTP/2 streams that failed with their connection (UC)
//	envoy_cluster_upstream_rq_rx_reset{cluster_name}                      HTTP/2 streams the upstream reset (RST_STREAM but REFUSED_STREAM, UR)
//	envoy_listener_downstream_cx_total{listener}      downstream connections accepted
//	envoy_listener_downstream_cx_active{listener}     downstream connections open
var (
	clusterRq      = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_total", Help: "Upstream requests (each try)."}, []string{"cluster_name"})
	clusterRetry   = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_retry", Help: "Upstream retries."}, []string{"cluster_name"})
	clusterTimeout = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_timeout", Help: "Upstream tries that timed out."}, []string{"cluster_name"})
	clusterActive  = stats.NewGaugeVec(prometheus.GaugeOpts{Name: "envoy_cluster_upstream_cx_active", Help: "Upstream connections and exchanges in flight."}, []string{"cluster_name"})

	clusterDestroyActive       = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_cx_destroy_with_active_rq", Help: "Upstream connections that ended with a request active."}, []string{"cluster_name"})
	clusterDestroyRemoteActive = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_cx_destroy_remote_with_active_rq", Help: "Upstream connections ended by the upstream with a request active."}, []string{"cluster_name"})
	clusterPendingFailureEject = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_pending_failure_eject", Help: "Upstream HTTP/2 streams failed by their connection's termination."}, []string{"cluster_name"})
	clusterRxReset             = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_rx_reset", Help: "Upstream HTTP/2 streams reset by the upstream."}, []string{"cluster_name"})

	listenerCx     = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_cx_total", Help: "Downstream connections accepted."}, []string{"listener"})
	listenerActive = stats.NewGaugeVec(prometheus.GaugeOpts{Name: "envoy_listener_downstream_cx_active", Help: "Downstream connections open."}, []string{"listener"})
)

// ClusterStats are one cluster's counters, resolved once.
type ClusterStats struct {
	Requests, Retries, Timeouts prometheus.Counter
	Active                      prometheus.Gauge

	// Upstream connection terminations and resets, counted by
	// proxy/upstream's pools as Envoy's HTTP pools count them:
	// DestroyWithActive and DestroyRemoteWithActive once per connection
	// that ended (by the upstream) under a request;
	// PendingFailureEject per HTTP/2 stream failed that way; RxReset per
	// HTTP/2 stream the upstream reset (RST_STREAM but REFUSED_STREAM).
	// All before the response head: a response cut later is not counted.
	DestroyWithActive, DestroyRemoteWithActive prometheus.Counter
	PendingFailureEject, RxReset               prometheus.Counter
}

// ListenerStats are one listener's counters, resolved once.
type ListenerStats struct {
	Connections prometheus.Counter
	Active      prometheus.Gauge
}

var (
	mu        sync.RWMutex
	clusters  = map[string]*ClusterStats{}  // guarded by mu
	listeners = map[string]*ListenerStats{} // guarded by mu
)

// Cluster returns the named cluster's counters.
func Cluster(name string) *ClusterStats {
	mu.RLock()
	c := clusters[name]
	mu.RUnlock()
	if c != nil {
		return c
	}
	mu.Lock()
	defer mu.Unlock()
	if c = clusters[name]; c == nil {
		c = &ClusterStats{Requests: clusterRq.WithLabelValues(name), Retries: clusterRetry.WithLabelValues(name),
			Timeouts: clusterTimeout.WithLabelValues(name), Active: clusterActive.WithLabelValues(name),
			DestroyWithActive: clusterDestroyActive.WithLabelValues(name), DestroyRemoteWithActive: clusterDestroyRemoteActive.WithLabelValues(name),
			PendingFailureEject: clusterPendingFailureEject.WithLabelValues(name), RxReset: clusterRxReset.WithLabelValues(name)}
		clusters[name] = c
	}
	return c
}

// Listener returns the named listener's counters.
func Listener(name string) *ListenerStats {
	mu.RLock()
	l := listeners[name]
	mu.RUnlock()
	if l != nil {
		return l
	}
	mu.Lock()
	defer mu.Unlock()
	if l = listeners[name]; l == nil {
		l = &ListenerStats{Connections: listenerCx.WithLabelValues(name), Active: listenerActive.WithLabelValues(name)}
		listeners[name] = l
	}
	return l
}
