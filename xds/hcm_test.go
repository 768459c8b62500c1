package xds

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	_ "github.com/gowaypoint/waypoint/filters/all"
	_ "github.com/gowaypoint/waypoint/filters/example/greeting"
	"github.com/gowaypoint/waypoint/protocols/l7"
)

// hcmChain is an HTTP filter chain whose HCM has the given http_filters,
// route config and extra fields.
func hcmChain(httpFilters, routeConfig, extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{name: web, filters: [{name: envoy.filters.network.http_connection_manager, typed_config: {` +
		`"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, ` +
		`stat_prefix: web, http_filters: [` + httpFilters + `], route_config: ` + routeConfig + extra + `}}]}`
}

const (
	routerFilter = `{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}`
	faultFilter  = `{name: envoy.filters.http.fault, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}}`
	simpleRoutes = `{name: r, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend}}]}]}`
)

func TestHCMDecode(t *testing.T) {
	istioLike := `stream_idle_timeout: 0s, use_remote_address: false, proxy_100_continue: true, normalize_path: true,
		server_name: istio-envoy, path_with_escaped_slashes_action: KEEP_UNCHANGED, upgrade_configs: [{upgrade_type: websocket}],
		request_id_extension: {typed_config: {"@type": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, use_request_id_for_trace_sampling: true}},
		http2_protocol_options: {max_concurrent_streams: 50}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(faultFilter+", "+routerFilter, simpleRoutes, istioLike))}, []string{backendCluster}))
	h := b.Snapshot.Listener("l").FilterChains[0].HTTP
	if h == nil {
		t.Fatal("no HTTP connection manager decoded")
	}
	got := struct {
		Names            []string
		Server           string
		Idle, StreamIdle time.Duration
		Normalize, P100  bool
		Upgrades         map[string]bool
		H2               DownstreamHTTP2
		GenerateID       bool
	}{h.FilterNames, h.ServerName, h.IdleTimeout, h.StreamIdleTimeout, h.NormalizePath, h.Proxy100Continue, h.Upgrades, h.HTTP2, h.GenerateRequestID}
	want := got
	want.Names = []string{"envoy.filters.http.fault", "envoy.filters.http.router"}
	want.Server, want.Idle, want.StreamIdle = "istio-envoy", time.Hour, 0
	want.Normalize, want.P100, want.Upgrades, want.GenerateID = true, true, map[string]bool{"websocket": true}, true
	want.H2 = DownstreamHTTP2{MaxConcurrentStreams: 50, InitialStreamWindowSize: 64 << 10, InitialConnectionWindowSize: 1 << 20}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded HCM (-want +got):\n%s", diff)
	}
	req := &l7.Request{Method: "GET", Authority: []byte("a"), Path: []byte("/x")}
	if r := h.Routes.Match(req); r == nil || r.Cluster() != "backend" {
		t.Errorf("route table does not route /x to backend")
	}
}

// TestHCMTimeoutsDecode: the connection manager's timeouts, with Envoy's
// defaults when absent.
func TestHCMTimeoutsDecode(t *testing.T) {
	type timeouts struct {
		StreamIdle, Request, Headers, Idle, MaxConn, MaxStream, Drain time.Duration
	}
	cases := []struct {
		name, extra string
		want        timeouts
	}{
		{"defaults", "", timeouts{StreamIdle: 5 * time.Minute, Idle: time.Hour, Drain: 5 * time.Second}},
		{"all set", `stream_idle_timeout: 7s, request_timeout: 3s, request_headers_timeout: 2s, drain_timeout: 1s,
			common_http_protocol_options: {idle_timeout: 9s, max_connection_duration: 60s, max_stream_duration: 30s}`,
			timeouts{7 * time.Second, 3 * time.Second, 2 * time.Second, 9 * time.Second, time.Minute, 30 * time.Second, time.Second}},
		{"zero disables", "stream_idle_timeout: 0s, common_http_protocol_options: {idle_timeout: 0s}", timeouts{Drain: 5 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(routerFilter, simpleRoutes, c.extra))}, []string{backendCluster}))
			h := b.Snapshot.Listener("l").FilterChains[0].HTTP
			got := timeouts{h.StreamIdleTimeout, h.RequestTimeout, h.RequestHeadersTimeout, h.IdleTimeout,
				h.MaxConnectionDuration, h.MaxStreamDuration, h.DrainTimeout}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("timeouts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHCMTypedStructFilter(t *testing.T) {
	greeting := `{name: example.greeting, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/example.greeting.v1.Config, value: {header: x-caller}}}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(greeting+", "+routerFilter, simpleRoutes, ""))}, []string{backendCluster}))
	if names := b.Snapshot.Listener("l").FilterChains[0].HTTP.FilterNames; len(names) != 2 || names[0] != "example.greeting" {
		t.Fatalf("filters %v", names)
	}
}

func TestHCMErrors(t *testing.T) {
	cases := []struct {
		name, filters, routes, extra, want string
	}{
		{"HTTP filter type not linked in", `{name: envoy.filters.http.lua, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}, ` + routerFilter, simpleRoutes, "",
			`unable to resolve "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"`},
		{"unknown HTTP filter", `{name: custom, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/some.Unknown}}, ` + routerFilter, simpleRoutes, "",
			`http_filters[0]: unsupported HTTP filter "custom" (type.googleapis.com/some.Unknown)`},
		{"route to a missing cluster", routerFilter, `{virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: nowhere}}]}]}`, "",
			`route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster "nowhere"`},
		{"invalid regex", routerFilter, `{virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {safe_regex: {regex: "(unclosed"}}, route: {cluster: backend}}]}]}`, "",
			`route_config.virtual_hosts[0].routes[0].match.safe_regex`},
		{"router not last", routerFilter + ", " + faultFilter, simpleRoutes, "", `must be terminal (the router)`},
		{"no route config", routerFilter, `null`, "", "route_config: required"},
		{"unsupported HCM field", routerFilter, simpleRoutes, "add_user_agent: true", "add_user_agent: not supported yet"},
		{"unknown field in a TypedStruct", `{name: example.greeting, typed_config: {"@type": type.googleapis.com/udpa.type.v1.TypedStruct, ` +
			`type_url: type.googleapis.com/example.greeting.v1.Config, value: {header: x-caller, dney: [intruder]}}}, ` + routerFilter, simpleRoutes, "",
			`http_filters[0].typed_config: example.greeting: unknown field "dney" (known: deny, header)`},
		{"bad fault config", `{name: envoy.filters.http.fault, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault, abort: {http_status: 99, percentage: {numerator: 1}}}}, ` + routerFilter,
			simpleRoutes, "", "http_filters[0].typed_config.abort.http_status: 99 is not in [200, 600)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := doc("", []string{listenerOn("l", 18000, "", hcmChain(c.filters, c.routes, c.extra))}, []string{backendCluster})
			_, err := ParseBootstrap([]byte(y), "test.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), `listener "l"`) && !strings.Contains(err.Error(), `listeners[0] "l"`) {
				t.Errorf("err = %v, does not name the listener", err)
			}
		})
	}
}

func TestHCMOptionalUnknownFilterIsSkipped(t *testing.T) {
	opt := `{name: envoy.filters.http.lua, is_optional: true, typed_config: {"@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/some.Unknown}}`
	b := mustParse(t, doc("", []string{listenerOn("l", 18000, "", hcmChain(opt+", "+routerFilter, simpleRoutes, ""))}, []string{backendCluster}))
	if names := b.Snapshot.Listener("l").FilterChains[0].HTTP.FilterNames; len(names) != 1 {
		t.Fatalf("filters %v, want the router only", names)
	}
}
