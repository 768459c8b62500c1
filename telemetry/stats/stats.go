// Package stats holds the process's Prometheus registry: the Istio standard
// metrics, the Envoy-style counters operators look for, and the filters'
// decision counters all register here, and the admin's /stats/prometheus
// and the metrics port serve it. Counters are keyed by name and labels, so
// a config reload that builds new filters keeps counting on the same
// series, as Envoy's stats outlive their config.
//
// This package imports no package of the project: filters, xds and proxy
// may all use it.
package stats

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the process's registry. Register collectors at init or
// config time, never per request.
var Registry = prometheus.NewRegistry()

// Handler serves Registry in the Prometheus text format (or OpenMetrics
// when asked), for /stats/prometheus.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

// NewCounterVec creates and registers a counter family, or returns the one
// already registered under the same name and labels.
func NewCounterVec(opts prometheus.CounterOpts, labels []string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(opts, labels)
	if err := Registry.Register(v); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector.(*prometheus.CounterVec)
		}
		panic(err)
	}
	return v
}

// NewGaugeVec is NewCounterVec for a gauge family.
func NewGaugeVec(opts prometheus.GaugeOpts, labels []string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(opts, labels)
	if err := Registry.Register(v); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector.(*prometheus.GaugeVec)
		}
		panic(err)
	}
	return v
}

// NewHistogramVec is NewCounterVec for a histogram family.
func NewHistogramVec(opts prometheus.HistogramOpts, labels []string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(opts, labels)
	if err := Registry.Register(v); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector.(*prometheus.HistogramVec)
		}
		panic(err)
	}
	return v
}

// NewCounter is NewCounterVec for a counter without labels.
func NewCounter(opts prometheus.CounterOpts) prometheus.Counter {
	return NewCounterVec(opts, nil).WithLabelValues()
}

// NewGaugeFunc registers a gauge whose value is read from f at each
// scrape; a gauge already registered under the name is kept (and f is
// not used).
func NewGaugeFunc(opts prometheus.GaugeOpts, f func() float64) {
	if err := Registry.Register(prometheus.NewGaugeFunc(opts, f)); err != nil {
		if _, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return
		}
		panic(err)
	}
}
