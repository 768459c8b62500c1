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
//	envoy_listener_downstream_cx_total{listener}      downstream connections accepted
//	envoy_listener_downstream_cx_active{listener}     downstream connections open
var (
	clusterRq      = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_total", Help: "Upstream requests (each try)."}, []string{"cluster_name"})
	clusterRetry   = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_retry", Help: "Upstream retries."}, []string{"cluster_name"})
	clusterTimeout = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_cluster_upstream_rq_timeout", Help: "Upstream tries that timed out."}, []string{"cluster_name"})
	clusterActive  = stats.NewGaugeVec(prometheus.GaugeOpts{Name: "envoy_cluster_upstream_cx_active", Help: "Upstream connections and exchanges in flight."}, []string{"cluster_name"})
	listenerCx     = stats.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_cx_total", Help: "Downstream connections accepted."}, []string{"listener"})
	listenerActive = stats.NewGaugeVec(prometheus.GaugeOpts{Name: "envoy_listener_downstream_cx_active", Help: "Downstream connections open."}, []string{"listener"})
)

// ClusterStats are one cluster's counters, resolved once.
type ClusterStats struct {
	Requests, Retries, Timeouts prometheus.Counter
	Active                      prometheus.Gauge
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
			Timeouts: clusterTimeout.WithLabelValues(name), Active: clusterActive.WithLabelValues(name)}
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
