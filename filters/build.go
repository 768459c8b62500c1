package filters

import (
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildContext is what a factory gets besides its config: where to count,
// where to log, and how to reach clusters. The config build (package xds)
// makes one for each filter it builds; a unit test may make its own (the
// zero value counts into nothing and has no cluster manager, but see
// Logger). Read-only; a filter may keep any of its fields for as long as
// it lives.
type BuildContext struct {
	// Name is the filter's name in the config: the http_filters or
	// dubbo_filters entry's name (or the filter's own name when the
	// context is for a per-route config).
	Name string
	// Stats registers the filter's metrics on the waypoint's registry.
	Stats Scope
	// Logger is the waypoint's logger with the filter's name attached.
	// Never nil in a context the config build makes (it discards when the
	// waypoint gave none); a test whose filter logs must set it.
	Logger *slog.Logger
	// Upstream reaches clusters, for a filter that calls out on its own
	// (an authorization service, a JWKS fetch), outside any stream or
	// before the stream's own calls. Each call goes to the clusters of the
	// config in force when it is made: the config being built is not in
	// force yet while New runs, so fetch lazily or in the background and
	// retry. A call made for a stream should use Stream.Upstream, which
	// reaches the clusters of the stream's own config. Nil when the
	// waypoint has no cluster manager (unit tests, `waypoint validate`): a
	// filter that cannot work without it says so from New with an error.
	Upstream Upstream
}

// Scope registers a filter's metrics on the registry the waypoint passes
// down (the one its /stats/prometheus serves), never a global one.
//
// Metrics are keyed by name and labels: registering a collector that is
// already registered (same name, help and label names) returns the one
// registered, so that a filter rebuilt by a config reload keeps counting on
// the same series, as Envoy's stats outlive their config. Register in New,
// never per request, and resolve label values there too where they come
// from config (With, WithLabelValues), so that the data path only counts.
//
// The zero Scope has no registry: its metrics count, and nobody reads them
// (unit tests, a config validated and thrown away). A Scope is a value,
// safe for concurrent use.
//
// A Scope from NewScope remembers the counter and gauge families it gave
// out, so that asking again for one (each filter chain of a config builds
// its own filters, istiod writes one per Service port) returns it without
// making a family to register and throw away. The config build makes one
// Scope per build.
type Scope struct {
	reg  prometheus.Registerer
	vecs *sync.Map // family key (vecKey) -> *prometheus.CounterVec or *prometheus.GaugeVec; nil: none kept
}

// NewScope returns a Scope on reg; nil gives the zero Scope.
func NewScope(reg prometheus.Registerer) Scope {
	if reg == nil {
		return Scope{}
	}
	return Scope{reg: reg, vecs: &sync.Map{}}
}

// vecKey is the key of a family in Scope.vecs; "" when it is not kept
// (const labels).
func vecKey(kind string, opts prometheus.Opts, labels []string) string {
	if len(opts.ConstLabels) > 0 {
		return ""
	}
	return kind + "\x00" + opts.Namespace + "\x00" + opts.Subsystem + "\x00" + opts.Name + "\x00" + opts.Help + "\x00" + strings.Join(labels, "\x00")
}

// family returns the family s gave out for key, else newFamily's,
// registered (register) and, when s keeps families, kept for key.
func family[C prometheus.Collector](s Scope, key string, newFamily func() C) (C, error) {
	keep := s.vecs != nil && key != ""
	if keep {
		if v, ok := s.vecs.Load(key); ok {
			if c, ok := v.(C); ok {
				return c, nil
			}
		}
	}
	c, err := register(s, newFamily())
	if err == nil && keep {
		s.vecs.Store(key, c)
	}
	return c, err
}

// CounterVec returns the counter family named opts.Name with the label
// names labels: the one already registered, or a new one, registered. An
// error says that the name is registered with other labels or help (or is
// not a valid metric name).
func (s Scope) CounterVec(opts prometheus.CounterOpts, labels ...string) (*prometheus.CounterVec, error) {
	return family(s, vecKey("counter", prometheus.Opts(opts), labels),
		func() *prometheus.CounterVec { return prometheus.NewCounterVec(opts, labels) })
}

// Counter is CounterVec for a counter without labels.
func (s Scope) Counter(opts prometheus.CounterOpts) (prometheus.Counter, error) {
	v, err := s.CounterVec(opts)
	if err != nil {
		return nil, err
	}
	return v.WithLabelValues(), nil
}

// StatCounter is one counter of a set that Counters registers: the family
// named the set's prefix and Name, with Help; Dst receives its series.
type StatCounter struct {
	Name, Help string
	Dst        *prometheus.Counter
}

// Counters registers (or reuses) each family prefix+c.Name with the one
// label label, and sets *c.Dst to its series label=value: a filter's
// Envoy-style counters under its stat_prefix, one family each. It stops at
// the first error.
func (s Scope) Counters(prefix, label, value string, cs ...StatCounter) error {
	for _, c := range cs {
		v, err := s.CounterVec(prometheus.CounterOpts{Name: prefix + c.Name, Help: c.Help}, label)
		if err != nil {
			return err
		}
		*c.Dst = v.WithLabelValues(value)
	}
	return nil
}

// GaugeVec is CounterVec for a gauge family.
func (s Scope) GaugeVec(opts prometheus.GaugeOpts, labels ...string) (*prometheus.GaugeVec, error) {
	return family(s, vecKey("gauge", prometheus.Opts(opts), labels),
		func() *prometheus.GaugeVec { return prometheus.NewGaugeVec(opts, labels) })
}

// HistogramVec is CounterVec for a histogram family.
func (s Scope) HistogramVec(opts prometheus.HistogramOpts, labels ...string) (*prometheus.HistogramVec, error) {
	return register(s, prometheus.NewHistogramVec(opts, labels))
}

// register registers c on s's registry, or returns the collector of the
// same identity registered before.
func register[C prometheus.Collector](s Scope, c C) (C, error) {
	if s.reg == nil {
		return c, nil
	}
	err := s.reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		var zero C
		return zero, err
	}
	return c, nil
}
