package xds

import (
	"errors"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gowaypoint/waypoint/filters"
)

// BuildOptions are what a build gives the filters it builds besides their
// config (filters.BuildContext): the waypoint's metrics registry, logger
// and cluster manager. The build stays a pure function of the resources
// and these options.
//
// The zero value builds for validation and tests: metrics registered
// nowhere, logs discarded, no cluster manager. Build, BuildResources,
// ParseBootstrap and LoadBootstrapFile use it; the waypoint calls the
// methods of its own options.
type BuildOptions struct {
	// Registry is where filters register their metrics (the waypoint's
	// telemetry/stats.Registry, which /stats/prometheus serves); nil
	// registers none.
	Registry prometheus.Registerer
	// Logger is the filters' logger, given to each with its name as the
	// "filter" attribute; nil discards.
	Logger *slog.Logger
	// Upstream is the cluster manager filters call out through on their
	// own (filters.BuildContext.Upstream); nil: none.
	Upstream filters.Upstream
}

// build is the state of one Build: its options, the clusters decoded so
// far (which listeners refer to), and the filters built that own something.
// Owned by the Build call.
type build struct {
	opts     BuildOptions
	scope    filters.Scope
	log      *slog.Logger
	clusters map[string]*Cluster
	secrets  map[string]*Secret // SDS secrets over ADS, by name
	owned    []io.Closer        // in build order; the snapshot's, or closed when the build fails

	loggers map[string]*slog.Logger // by filter name (see context)
	hcms    map[string]*hcmShared   // connection managers decoded, by their bytes but route_config (see decodeHCM)
	scratch []byte                  // decodeHCM's buffer for those bytes
}

func (o BuildOptions) newBuild() *build {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &build{opts: o, scope: filters.NewScope(o.Registry), log: log}
}

// own takes v, a built filter or per-route config, into the build's
// keeping when it is an io.Closer.
func (b *build) own(v any) {
	if c, ok := v.(io.Closer); ok {
		b.owned = append(b.owned, c)
	}
}

// closeAll closes cs, last built first, and returns their errors joined.
func closeAll(cs []io.Closer) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// context is the filters.BuildContext of the filter named name. Filters
// of one name share their logger (one per name and build, not one per
// filter chain).
func (b *build) context(name string) filters.BuildContext {
	log := b.loggers[name]
	if log == nil {
		if b.loggers == nil {
			b.loggers = map[string]*slog.Logger{}
		}
		log = b.log.With("filter", name)
		b.loggers[name] = log
	}
	return filters.BuildContext{Name: name, Stats: b.scope, Logger: log, Upstream: b.opts.Upstream}
}
