package xds

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	statspb "istio.io/api/envoy/extensions/stats"
)

// withStats adds istio.stats where istiod puts it for a Telemetry's metrics: in each
// HttpConnectionManager before the router, and before each tcp_proxy of main_internal.
func withStats(t *testing.T, cfg *statspb.PluginConfig) *Resources {
	t.Helper()
	r := mustLoad(t)
	stats, err := anypb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Listeners {
		if l.GetName() != "main_internal" {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			fs := fc.GetFilters()
			last := fs[len(fs)-1]
			switch last.GetTypedConfig().MessageName() {
			case "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
				fc.Filters = append(fs[:len(fs)-1:len(fs)-1], &listenerv3.Filter{Name: "istio.stats",
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: stats}}, last)
			case "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
				var hcm hcmv3.HttpConnectionManager
				if err := last.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					t.Fatal(err)
				}
				hf := hcm.GetHttpFilters()
				hcm.HttpFilters = append(hf[:len(hf)-1:len(hf)-1], &hcmv3.HttpFilter{Name: "istio.stats",
					ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: stats}}, hf[len(hf)-1])
				a, err := anypb.New(&hcm)
				if err != nil {
					t.Fatal(err)
				}
				last.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			}
		}
	}
	return r
}

// TestIstiodStats: istiod's istio.stats filter (a Telemetry's metrics, with or without
// overrides) is taken on the HTTP and TCP chains, its overrides given to the chain's metrics;
// overrides the waypoint does not implement are refused, naming the field (before, any
// istio.stats filter was refused as an unknown HTTP filter).
func TestIstiodStats(t *testing.T) {
	cfg := func(ms ...*statspb.MetricConfig) *statspb.PluginConfig {
		return &statspb.PluginConfig{Reporter: statspb.Reporter_SERVER_GATEWAY, DisableHostHeaderFallback: true, Metrics: ms}
	}
	cases := []struct {
		name      string
		cfg       *statspb.PluginConfig
		overrides bool
		want      string // error, "" when taken
	}{
		{"metrics on, no override", cfg(), false, ""},
		{"a metric disabled, a tag removed", cfg(&statspb.MetricConfig{Name: "request_bytes", Drop: true},
			&statspb.MetricConfig{Name: "requests_total", TagsToRemove: []string{"request_protocol"}}), true, ""},
		{"a tag set by expression", cfg(&statspb.MetricConfig{Name: "requests_total", Dimensions: map[string]string{"custom_dim": "request.host"}}), true, ""},
		{"a tag of every metric set by expression (ALL_METRICS), TCP ones too", cfg(&statspb.MetricConfig{Dimensions: map[string]string{"custom_dim": "request.host"}}), true, ""},
		{"an expression that does not compile", cfg(&statspb.MetricConfig{Name: "requests_total", Dimensions: map[string]string{"mesh": "node.metadata['MESH_ID']"}}), false,
			`http_filters[6].typed_config.metrics[0].dimensions[mesh]: CEL expression "node.metadata['MESH_ID']": ERROR`},
	}
	for _, c := range cases {
		snap, err := BuildResources("1", withStats(t, c.cfg))
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		n := 0
		for _, fc := range snap.Listener("main_internal").FilterChains {
			switch {
			case fc.HTTP != nil:
				n++
				if (fc.HTTP.Stats != nil) != c.overrides {
					t.Errorf("%s: chain %q: HCM overrides %v", c.name, fc.Name, fc.HTTP.Stats)
				}
			case fc.TCPProxy != nil:
				n++
				if (fc.TCPProxy.Stats != nil) != c.overrides {
					t.Errorf("%s: chain %q: tcp_proxy overrides %v", c.name, fc.Name, fc.TCPProxy.Stats)
				}
			}
		}
		if n != 5 {
			t.Errorf("%s: %d chains checked, want 5", c.name, n)
		}
	}
}
