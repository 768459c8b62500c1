package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gowaypoint/waypoint/telemetry/metrics"
)

// Istio's stats filter (istio.stats, a stats.PluginConfig), which istiod
// adds to every chain of a waypoint with a Telemetry's metrics: as an HTTP
// filter of each HttpConnectionManager and as a network filter before a
// tcp_proxy. Its overrides (a metric dropped, tags removed) apply to the
// standard metrics of that chain's requests or connections; what the
// waypoint does not implement of it is refused (telemetry/metrics
// NewOverrides).

// httpStatsOverrides returns the overrides of the istio.stats filter among
// an HttpConnectionManager's http_filters (nil when there is none, or it
// overrides nothing). The chain was built: each config decodes.
func httpStatsOverrides(b *build, pbs []*hcmv3.HttpFilter) (*metrics.Overrides, error) {
	var out *metrics.Overrides
	seen := false
	for i, f := range pbs {
		if !isStatsFilter(f.GetName(), f.GetTypedConfig()) {
			continue
		}
		if seen {
			return nil, errAt(idx("http_filters", i), "a second %s filter is not supported", metrics.StatsFilterName)
		}
		seen = true
		factory, cfg, err := resolveFilter(f.GetName(), f.GetTypedConfig())
		if err != nil {
			return nil, at(idx("http_filters", i), err)
		}
		built, err := factory.New(b.context(f.GetName()), cfg)
		if err != nil {
			return nil, at(idx("http_filters", i)+".typed_config", err)
		}
		b.own(built)
		if sf, ok := built.(metrics.StatsFilter); ok {
			out = sf.Overrides
		}
	}
	return out, nil
}

// isStatsFilter tells the stats filter by its config's type (in a
// TypedStruct or not), else by name when it has no config.
func isStatsFilter(name string, a *anypb.Any) bool {
	if a == nil {
		return name == metrics.StatsFilterName
	}
	if typeURL, _, ok := typedStruct(a); ok {
		return typeURL == metrics.StatsTypeURL
	}
	return a.GetTypeUrl() == metrics.StatsTypeURL
}

// decodeNetworkStats decodes f when it is the istio.stats network filter;
// ok is false for another filter. Errors are relative to f.
func decodeNetworkStats(f *listenerv3.Filter) (ov *metrics.Overrides, ok bool, err error) {
	a := f.GetTypedConfig()
	if a == nil || !isStatsFilter(f.GetName(), a) {
		return nil, false, nil
	}
	_, cfg, err := resolveFilter(metrics.StatsFilterName, a)
	if err != nil {
		return nil, true, at("typed_config", err)
	}
	ov, err = metrics.NewOverrides(cfg)
	return ov, true, at("typed_config", err)
}
